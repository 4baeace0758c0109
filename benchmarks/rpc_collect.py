"""Collection throughput through TVM RPC (issue 16): programs measured per second *end to end*
(trace replay, local builds, runs, records written) for the same sample of the bundled CPU program
set, measured three ways on this machine:

- `local`: LocalRunner (the default);
- `rpc-1`: MetaSchedule's RPCRunner on one server (`python -m tensorcost.services.rpc_server`);
- `rpc-2`: two servers under one key (the runner opens one session per server).

    .venv/bin/python benchmarks/rpc_collect.py --tasks 2 --per-task 8 --repeats 3 --out docs/results/rpc_collect.json

The tracker (`python -m tvm.exec.rpc_tracker`) and the servers run on loopback, sharing this
machine's cores with the driver and its builder: two servers cannot be faster than one here.
What the figures show is what RPC costs per program (a session, an upload, linking on the
server) and that the fan-out works; on separate machines runs scale with the servers while
builds stay on the driver. Each repeat starts from an empty output directory; the report gives
every time and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_registered(port: int, key: str, n: int, timeout: float = 120) -> None:
    from tensorcost import rpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if rpc.servers_by_key(rpc.tracker_summary("127.0.0.1", port, 3)).get(key, 0) >= n:
                return
        except rpc.RpcUnavailable:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{n} server(s) of key {key} did not register within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--per-task", type=int, default=8)
    ap.add_argument("--variant", default="avx2-t1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--run-batch", type=int, default=8)
    ap.add_argument("--modes", default="local,rpc-1,rpc-2")
    ap.add_argument("--out", default="docs/results/rpc_collect.json")
    args = ap.parse_args()

    from tensorcost import collect, dataset, hardware, rpc
    from tensorcost.services import free_port, wait_for_port

    tasks, programs, _ = collect.load_task_set(dataset.programs_dir("cpu"))
    chosen = dataset.sample_programs(programs, args.tasks, args.per_task, 0)
    tasks = [t for t in tasks if t.task_id in chosen]
    n = sum(map(len, chosen.values()))
    logs = Path(tempfile.mkdtemp(prefix="rpc-bench-logs-"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    port = free_port()
    procs = [start([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)], logs / "tracker.log", env)]
    tracker = f"127.0.0.1:{port}"
    results: dict[str, dict] = {}
    try:
        wait_for_port(port, timeout=90, what="rpc tracker", proc=procs[0], log=logs / "tracker.log")
        for key, count in (("bench-1", 1), ("bench-2", 2)):
            for i in range(count):
                sp = free_port()
                procs.append(start([sys.executable, "-m", "tensorcost.services.rpc_server", "--host", "127.0.0.1", "--port", str(sp), "--port-end", str(sp + 1),
                                    "--tracker", tracker, "--key", key, "--silent"], logs / f"{key}-{i}.log", env))
        wait_registered(port, "bench-1", 1)
        wait_registered(port, "bench-2", 2)
        base = dict(number=1, repeat=1, min_repeat_ms=0, run_batch=args.run_batch, builder_workers=2)
        for mode in args.modes.split(","):
            if mode == "local":
                cfg = collect.MeasureConfig(**base)
                hw = hardware.resolve_target(f"host.{args.variant}")
            else:
                key = {"rpc-1": "bench-1", "rpc-2": "bench-2"}[mode]
                cfg = collect.MeasureConfig(**base, rpc={"tracker": tracker, "key": key, "session_timeout_s": 60, "request_timeout_s": 60.0})
                hw = rpc.resolve_remote(cfg.rpc, f"remote.{args.variant}")
            secs, errors = [], []
            for r in range(args.repeats):
                out = Path(tempfile.mkdtemp(prefix=f"rpc-bench-{mode}-"))
                t0 = time.perf_counter()
                counts = collect.measure_task_set(tasks, chosen, hw, out, cfg)
                secs.append(time.perf_counter() - t0)
                errors.append(counts["errors"])
                assert counts["measured"] == n, counts
                print(f"{mode} repeat {r + 1}: {n} programs in {secs[-1]:.1f} s ({n / secs[-1]:.2f} programs/s, {counts['errors']} errors)", file=sys.stderr, flush=True)
            med = statistics.median(secs)
            results[mode] = {"target": hw.id, "seconds": [round(s, 2) for s in secs], "median_s": round(med, 2), "programs_per_s": round(n / med, 3),
                             "errors": errors, "servers": 0 if mode == "local" else int(mode[-1])}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    report = {"benchmark": "rpc_collect", "programs": n, "tasks": len(tasks), "repeats": args.repeats, "variant": args.variant,
              "protocol": {"number": 1, "repeat": 1, "min_repeat_ms": 0, "run_batch": args.run_batch, "builder_workers": 2},
              "machine": f"{hardware.host_platform().id} ({os.cpu_count()} cores, tracker and servers on loopback)", "modes": results,
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
