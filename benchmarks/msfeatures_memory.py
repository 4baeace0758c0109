"""What the msfeatures stage holds (docs/SCALE.md): a records file read a batch of 4,096 records
at a time (`ms_features_of_records`, the stage since the twenty-third session) against the
stage before it (the records' traces read whole as a frame, every matrix extracted into one list,
then written).

    .venv/bin/python benchmarks/msfeatures_memory.py --slot zen3-2c.avx2-t1 --copies 1 4 --out docs/results/msfeatures_memory.json

A bundled platform's records are copied `--copies` times with fresh record ids (the same
programs: k x the rows). The MetaSchedule feature cache (`--cache`, the stage's own by default)
is filled first, so every measured run extracts nothing and the figures are the data path's:
each (size, mode) runs in a fresh process, peak RSS over the RSS after TVM's import and the
workloads' load, and seconds. Both modes must write the same matrices (checked).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anon_memory import PeakRSS, anon_rss_mb

REPO = Path(__file__).resolve().parents[1]


def write_copies(slot: str, copies: int, out: Path) -> Path:
    import pyarrow as pa
    import pyarrow.compute as pc

    from tensorcost import dataset
    from tensorcost import records as rec

    base = dataset.relabel(rec.read_records(REPO / dataset.bundled_records_path(slot)), slot)
    ids = base.schema.get_field_index("record_id")
    parts = [base.set_column(ids, "record_id", pc.binary_join_element_wise(base.column("record_id"), pa.scalar(f"-c{k}"), "")) for k in range(copies)]
    path = out / f"{slot}-x{copies}.parquet"
    rec.write_records(pa.concat_tables(parts), path)
    return path


def run(records_file: Path, slot: str, mode: str, cache: Path, out_dir: Path) -> dict:
    """In this process: the stage's work on `records_file` in `mode` (batches or whole)."""
    import pandas as pd
    import tvm.s_tir.meta_schedule  # noqa: F401  (the import is the baseline, not the data)

    from tensorcost import dataset
    from tensorcost.collect import load_tasks
    from tensorcost.features.metaschedule import extract_ms_features, ms_features_of_records, save_ms_features
    from tensorcost.hardware.catalog import catalog_target
    from tensorcost.tvm_support import tvm_target

    tasks = load_tasks([REPO / dataset.programs_dir("cpu")])
    target = tvm_target(catalog_target(slot))
    base = anon_rss_mb()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        if mode == "batches":
            rows = ms_features_of_records(records_file, tasks, target, out_dir, slot, cache_dir=cache)
        else:  # the stage before: the traces as one frame, every matrix in one list, then one write
            df = pd.read_parquet(records_file, columns=["record_id", "task_id", "trace", "error_no"])
            df = df[df["error_no"] == 0]
            mats = extract_ms_features(tasks, list(zip(df["task_id"], df["trace"])), target, cache_dir=cache)
            rows = save_ms_features(out_dir, slot, df["record_id"].tolist(), mats)
    return {"store_rows": rows, "seconds": round(time.perf_counter() - t0, 2), "rss_after_imports_mb": round(base, 1),
            "peak_over_imports_mb": round(rss.peak - base, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--cache", default=str(REPO / ".tensorcost/cache/msfeatures"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--run", nargs=3, metavar=("RECORDS", "MODE", "OUT_DIR"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run(Path(args.run[0]), args.slot, args.run[1], Path(args.cache), Path(args.run[2]))))
        return
    import numpy as np
    import pyarrow.parquet as pq

    def child(records: Path, mode: str, out_dir: Path) -> dict:
        cmd = [sys.executable, __file__, "--run", str(records), mode, str(out_dir), "--slot", args.slot, "--cache", args.cache, "--out", "-"]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

    results = []
    with tempfile.TemporaryDirectory(prefix="tc-msfeatures-") as tmp:
        tmp = Path(tmp)
        one = write_copies(args.slot, 1, tmp)
        print("filling the feature cache (TVM extracts what it lacks)...", flush=True)
        child(one, "batches", tmp / "warm")
        for copies in args.copies:
            records = one if copies == 1 else write_copies(args.slot, copies, tmp)
            n = pq.ParquetFile(records).metadata.num_rows
            for mode in ("whole", "batches"):
                r = child(records, mode, tmp / f"{mode}-{copies}")
                results.append({"copies": copies, "records": n, "mode": mode, **r})
                print(json.dumps(results[-1]), flush=True)
            a, b = (np.load(tmp / f"{m}-{copies}/{args.slot}.ms_rows.npy") for m in ("whole", "batches"))
            assert np.array_equal(a, b), "the two modes wrote different matrices"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "slot": args.slot, "rows": results}, indent=1))
    print("| records | mode | store rows | seconds | peak over imports (MB) |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['records']:,} | {r['mode']} | {r['store_rows']:,} | {r['seconds']} | {r['peak_over_imports_mb']} |")


if __name__ == "__main__":
    main()
