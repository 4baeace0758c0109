"""Registry operations per second: the embedded SQLite store vs an MLflow server on PostgreSQL
(issue 16). What a team pays for sharing one registry over HTTP.

    .venv/bin/python benchmarks/registry_ops.py --n 20 --repeats 3 --out docs/results/registry_ops.json

Each store gets one target with two registered versions (small "random" models), then each
operation runs `--n` times per repeat through `tensorcost.registry` (what the CLI and the
pipeline call): `set_tags` (one version tag), `get_version` (resolve an alias), `promote`
(lock + gates + alias move + history event; alternating versions, so every call promotes) and
`load_by_alias` (download through the store, verify, load). The report gives the median ops/s
over repeats and the spread. Without --server-uri a private server is started in a temporary
state dir and stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

TARGET = "bench-1c.avx2-t1"


def _register_two(tmp: Path) -> tuple[str, str]:
    from tensorcost import registry
    from tensorcost.models import create_model

    versions = []
    for i in range(2):
        d = tmp / f"model-{i}"
        create_model("random", TARGET, "tc-feat-bench", [], seed=i).save(d)
        tags = {"target": TARGET, "model_family": "random", "feature_schema": "tc-feat-bench", "eval_data_hash": "bench", "validation": "passed", "metric.pca": 0.5}
        versions.append(registry.log_and_register(d, TARGET, experiment="bench", run_name=f"bench-{i}", params={}, metrics={"pca": 0.5}, tags=tags,
                                                  alias=registry.CANDIDATE))
    return versions[0], versions[1]


def _ops(v1: str, v2: str) -> dict:
    """name -> callable(i): one operation of that kind."""
    from tensorcost import registry

    return {
        "set_tags": lambda i: registry.set_tags(TARGET, v1, {"bench": i}),
        "get_version": lambda i: registry.get_version(TARGET, registry.CANDIDATE),
        "promote": lambda i: registry.promote(TARGET, v1 if i % 2 else v2, min_gain=-1.0, metric_keys=("pca",)),
        "load_by_alias": lambda i: registry.load_by_alias(TARGET, registry.CANDIDATE),
    }


def bench_store(uri: str, n: int, repeats: int) -> dict:
    """ops/s per operation against the store at `uri` (MLFLOW_TRACKING_URI is what registry reads)."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    with tempfile.TemporaryDirectory(prefix="tensorcost-bench-") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # a SQLite store's local artifacts land here, not in the checkout
        try:
            ops = _ops(*_register_two(Path(tmp)))
            out = {}
            for name, op in ops.items():
                op(0)  # warm: first-touch costs (connections, imports) are not per-operation costs
                rates = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    for i in range(n):
                        op(i)
                    rates.append(n / (time.perf_counter() - t0))
                out[name] = {"ops_per_s": round(statistics.median(rates), 2), "min": round(min(rates), 2), "max": round(max(rates), 2),
                             "ms_per_op": round(1000 / statistics.median(rates), 1)}
                print(f"{uri.split('?')[0][:40]:40s} {name:14s} {out[name]['ops_per_s']:8.2f} ops/s", flush=True)
            return out
        finally:
            os.chdir(cwd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="operations per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--server-uri", default=None, help="an MLflow server to use (default: start a private one)")
    ap.add_argument("--out", default="docs/results/registry_ops.json")
    args = ap.parse_args()

    from tensorcost.services.mlflow_server import start_mlflow_server, stop_mlflow_server

    results: dict = {}
    sqlite_dir = Path(tempfile.mkdtemp(prefix="tensorcost-bench-sqlite-"))
    state = None
    try:
        results["sqlite"] = bench_store(f"sqlite:///{sqlite_dir / 'mlflow.db'}", args.n, args.repeats)
        uri = args.server_uri
        if uri is None:
            state = Path(tempfile.mkdtemp(prefix="tensorcost-bench-server-"))
            state.chmod(0o755)  # as root, PostgreSQL runs as `postgres`, which must reach it
            uri = start_mlflow_server(state)["tracking_uri"]
        results["server"] = bench_store(uri, args.n, args.repeats)
    finally:
        if state is not None:
            stop_mlflow_server(state)
            shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(sqlite_dir, ignore_errors=True)
    report = {"n": args.n, "repeats": args.repeats, "cpus": os.cpu_count(), "python": platform.python_version(),
              "server": "mlflow server on PostgreSQL 127.0.0.1 (served artifacts)" if args.server_uri is None else args.server_uri,
              "stores": results,
              "server_vs_sqlite": {k: round(results["server"][k]["ops_per_s"] / results["sqlite"][k]["ops_per_s"], 2) for k in results["sqlite"]}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["server_vs_sqlite"]))


if __name__ == "__main__":
    main()
