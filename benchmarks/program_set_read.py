"""What the collect stage holds of a program set (docs/SCALE.md): the set read whole, as every
version before the twenty-third session did, against the host sample's tasks read alone.

    .venv/bin/python benchmarks/program_set_read.py --copies 1 4 16 --out docs/results/program_set_read.json

The bundled CPU program set (data/bundled/programs/cpu/programs.parquet) is copied `--copies`
times with renamed task ids (k x its tasks and programs: real traces, the sizes a larger set
would have) and written as the program set is written now (`records.write_programs`: sorted by
task, row groups of 4,096 programs); at one copy also as the packs wrote it before (one row
group, a grown task's programs appended at the end). Each (size, read) runs in `--repeats` fresh
processes (medians): peak anonymous RSS over the process's after its imports and one pass over the
task ids (the Parquet reader's thread pools and allocator arenas: the baseline), the RSS still
held after (Arrow's allocator keeps what it freed), and seconds. "whole" reads every program
(`read_programs(path)`); "sample" is the collect stage's path: the task ids' counts, the seeded
draw of `--tasks` tasks (`dataset.sample_task_ids`), and those tasks' programs only.
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
SOURCE = REPO / "data/bundled/programs/cpu/programs.parquet"


def write_copies(out: Path, copies: int, layout: str) -> Path:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tensorcost.records import write_programs

    base = pq.read_table(SOURCE)
    parts = [base.set_column(0, "task_id", pc.binary_join_element_wise(base.column("task_id"), pa.scalar(f"-c{k}"), "")) for k in range(copies)]
    table = pa.concat_tables(parts)
    path = out / f"programs-{copies}-{layout}.parquet"
    if layout == "task_row_groups":
        write_programs(table, path)
    else:  # the earlier packs: the table as merged, one row group
        pq.write_table(table, path, row_group_size=table.num_rows)
    return path


def measure(path: Path, mode: str, tasks: int, seed: int) -> dict:
    """In this process: (programs read, seconds, peak RSS over the RSS after the imports)."""
    from tensorcost import dataset
    from tensorcost.records import program_task_counts, read_programs

    program_task_counts(path)  # warm-up: the Parquet reader's thread pools and allocator arenas belong to the baseline
    base = anon_rss_mb()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        if mode == "whole":
            programs = read_programs(path)
        else:
            programs = read_programs(path, dataset.sample_task_ids(program_task_counts(path), tasks, seed))
    seconds = time.perf_counter() - t0
    return {"programs_read": sum(map(len, programs.values())), "tasks_read": len(programs), "seconds": round(seconds, 3),
            "rss_after_imports_mb": round(base, 1), "peak_over_imports_mb": round(rss.peak - base, 1), "held_after_mb": round(anon_rss_mb() - base, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--tasks", type=int, default=8, help="host.tasks of params.yaml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes a (size, read); medians reported, ranges kept in the JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--measure", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1], args.tasks, args.seed)))
        return
    import pyarrow.parquet as pq
    from tqdm import tqdm

    rows = []
    with tempfile.TemporaryDirectory(prefix="tc-programs-") as tmp:
        plan = [(c, "task_row_groups") for c in args.copies] + [(1, "one_row_group")]
        for copies, layout in tqdm(plan, desc="program sets", unit="set"):
            path = write_copies(Path(tmp), copies, layout)
            meta = pq.ParquetFile(path).metadata
            for mode in ("whole", "sample"):
                runs = [json.loads(subprocess.run([sys.executable, __file__, "--measure", str(path), mode, "--tasks", str(args.tasks), "--seed", str(args.seed),
                                                   "--out", "-"], check=True, capture_output=True, text=True).stdout) for _ in range(args.repeats)]
                median = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_over_imports_mb", "held_after_mb")}
                spread = {f"{k}_range": [min(r[k] for r in runs), max(r[k] for r in runs)] for k in ("seconds", "peak_over_imports_mb")}
                rows.append({"copies": copies, "layout": layout, "programs": meta.num_rows, "row_groups": meta.num_row_groups,
                             "file_mb": round(path.stat().st_size / 2**20, 1), "read": mode, "repeats": args.repeats,
                             "programs_read": runs[0]["programs_read"], "tasks_read": runs[0]["tasks_read"], **median, **spread})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "tasks": args.tasks, "rows": rows}, indent=1))
    print("| programs | layout | row groups | read | programs read | seconds | peak over imports (MB) | held after (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['programs']:,} | {r['layout']} | {r['row_groups']} | {r['read']} | {r['programs_read']:,} | {r['seconds']} | "
              f"{r['peak_over_imports_mb']} | {r['held_after_mb']} |")


if __name__ == "__main__":
    main()
