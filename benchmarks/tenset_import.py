"""Throughput benchmark of `tensorcost import-tenset` on a generated TenSet-shaped directory.

    .venv/bin/python benchmarks/tenset_import.py --records 1000000 --repeats 3

Generates `measure_records/<platform>/<task>.json` files from the real records in
tests/data/autoscheduler_logs (workload keys, steps and costs perturbed so every line is a
distinct record; the perturbed costs have 17 significant digits where the real files have at most 6, the
C scanner's slow case), then times the import into Parquet. Prints per-run and median records/s and
the importer's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED_FILE = REPO / "tests/data/autoscheduler_logs/resnet-50-NHWC-B1-llvm.json"


def generate(root: Path, n_records: int, per_task: int = 4000, seed: int = 0) -> int:
    rng = random.Random(seed)
    seeds = [json.loads(l) for l in SEED_FILE.read_text().splitlines() if l.strip() and not l.startswith("#")]
    platforms = ["platinum-8272", "e5-2673", "epyc-7452"]
    written, task = 0, 0
    while written < n_records:
        base = seeds[task % len(seeds)]
        wk = json.loads(base["i"][0][0])
        wk[0] = f"{task:032x}"
        d = root / "measure_records" / platforms[task % len(platforms)]
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"task-{task:05d}.json", "w") as f:
            for _ in range(min(per_task, n_records - written)):
                rec = json.loads(json.dumps(base))
                rec["i"][0][0] = json.dumps(wk)
                for step in rec["i"][1][1]:
                    if step[0] == "SP" and isinstance(step[4], list):
                        step[4] = [rng.choice([1, 2, 4, 8, 16]) for _ in step[4]]
                rec["r"][0] = [c * rng.uniform(0.5, 3.0) for c in rec["r"][0]]
                rec["r"][3] = 1606960872 + written
                f.write(json.dumps(rec) + "\n")
                written += 1
        task += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tensorcost-bench"))
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--reference-parser", action="store_true", help="time the reference path (orjson) instead of the C scanner")
    args = ap.parse_args()
    src = args.workdir / "tenset"
    if not (src / "measure_records").exists():
        t0 = time.perf_counter()
        n = generate(src, args.records)
        print(f"generated {n} records in {time.perf_counter() - t0:.1f} s under {src}")
    size_mb = sum(f.stat().st_size for f in src.rglob("*.json")) / 1e6
    rates = []
    for i in range(args.repeats):
        out = args.workdir / "out.parquet"
        cmd = [sys.executable, "-m", "tensorcost.cli", "import-tenset", str(src / "measure_records"), "--out", str(out)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        if args.reference_parser:
            cmd += ["--reference-parser"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        n = json.loads(proc.stdout.strip().splitlines()[-1])["imported"]
        rates.append(n / dt)
        print(f"run {i + 1}: {n} records in {dt:.2f} s = {n / dt:,.0f} records/s (input {size_mb:.0f} MB, output {out.stat().st_size / 1e6:.0f} MB)")
    print(f"median {statistics.median(rates):,.0f} records/s over {len(rates)} runs (min {min(rates):,.0f}, max {max(rates):,.0f}); "
          f"peak RSS of the largest child {ru.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
