"""What the records stage holds (docs/SCALE.md): a slot's records read whole, relabelled and written,
as every version before the twenty-fourth session did, against `records.copy_records` (a batch of
4,096 records at a time).

    .venv/bin/python benchmarks/records_copy_memory.py --copies 1 4 16 --out docs/results/records_copy_memory.json

Zen 3's bundled records (data/bundled/platforms/zen3-2c/avx2-t1.parquet: real traces) are copied
`--copies` times with renamed task ids and written as the bundled files are (`records.write_records`:
one row group up to ~1M records) and, at the largest size, also as the TenSet importer writes
(row groups of 65,536). Each (size, mode) runs in `--repeats` fresh processes (medians): peak
anonymous RSS over the process's after its imports and a one-batch warm-up (the Parquet reader's
pools: the baseline), and seconds. Both modes write the same records (checked on the first run of
each size: same row count, same record ids in the same order).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anon_memory import PeakRSS, anon_rss_mb

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "data/bundled/platforms/zen3-2c/avx2-t1.parquet"
TARGET = "records-copy-bench-2c.avx2-t1"


def write_copies(out: Path, copies: int, layout: str) -> Path:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tensorcost.records import RECORDS_SCHEMA, read_records, write_records

    base = read_records(SOURCE)
    col = base.schema.get_field_index("task_id")
    table = pa.concat_tables([base.set_column(col, "task_id", pc.binary_join_element_wise(base.column("task_id"), pa.scalar(f"-c{k}"), ""))
                              for k in range(copies)]).cast(RECORDS_SCHEMA)
    path = out / f"records-{copies}-{layout}.parquet"
    if layout == "one_row_group":
        write_records(table, path)
    else:  # the importer's layout
        pq.write_table(table, path, compression="zstd", row_group_size=65_536)
    return path


def measure(path: Path, mode: str, out: Path) -> dict:
    """In this process: (records written, seconds, peak RSS over the RSS after the imports)."""
    import pyarrow.parquet as pq

    from tensorcost import dataset
    from tensorcost.records import COLUMNS, copy_records, read_records, write_records

    with pq.ParquetFile(path) as pf:  # warm-up: the reader's pools belong to the baseline
        next(pf.iter_batches(batch_size=16, columns=list(COLUMNS)))
    base = anon_rss_mb()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        if mode == "whole":
            table = dataset.relabel(read_records(path), TARGET)
            write_records(table, out)
            rows = table.num_rows
            del table
        else:
            rows = copy_records(path, out, transform=lambda part: dataset.relabel(part, TARGET))
    seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": round(seconds, 3), "rss_after_imports_mb": round(base, 1), "peak_over_imports_mb": round(rss.peak - base, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes a (size, mode); medians reported, ranges kept in the JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--measure", nargs=3, metavar=("PATH", "MODE", "OUT"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1], Path(args.measure[2]))))
        return
    import pyarrow.parquet as pq
    from tqdm import tqdm

    rows = []
    with tempfile.TemporaryDirectory(prefix="tc-records-copy-") as tmp:
        plan = [(c, "one_row_group") for c in args.copies] + [(max(args.copies), "row_groups_65536")]
        for copies, layout in tqdm(plan, desc="records files", unit="file"):
            path = write_copies(Path(tmp), copies, layout)
            meta = pq.ParquetFile(path).metadata
            written = {}
            for mode in ("whole", "batches"):
                dest = Path(tmp) / f"out-{mode}.parquet"
                runs = [json.loads(subprocess.run([sys.executable, __file__, "--measure", str(path), mode, str(dest), "--out", "-"],
                                                  check=True, capture_output=True, text=True).stdout) for _ in range(args.repeats)]
                written[mode] = pq.read_table(dest, columns=["record_id"]).column("record_id")
                median = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_over_imports_mb")}
                spread = {f"{k}_range": [min(r[k] for r in runs), max(r[k] for r in runs)] for k in ("seconds", "peak_over_imports_mb")}
                rows.append({"copies": copies, "layout": layout, "records": meta.num_rows, "row_groups": meta.num_row_groups,
                             "file_mb": round(path.stat().st_size / 2**20, 1), "mode": mode, "repeats": args.repeats, **median, **spread})
            if not written["whole"].equals(written["batches"]):
                raise SystemExit(f"{path.name}: the two modes wrote different records")
            for mode in written:
                (Path(tmp) / f"out-{mode}.parquet").unlink()
            path.unlink()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))
    print("| records | layout | row groups | file (MB) | mode | seconds | peak over imports (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['records']:,} | {r['layout']} | {r['row_groups']} | {r['file_mb']} | {r['mode']} | {r['seconds']} | {r['peak_over_imports_mb']} |")


if __name__ == "__main__":
    main()
