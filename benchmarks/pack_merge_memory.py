"""What `tensorcost dataset pack --merge` holds (docs/SCALE.md): a collection run that grows tasks
merged into a program set and a platform's records that are `--copies` times the bundled ones.

    .venv/bin/python benchmarks/pack_merge_memory.py --copies 1 4 16 --out docs/results/pack_merge_memory.json
    # the code before the twenty-fourth session, for the "before" column (a checkout of 1d3b1ab):
    git worktree add /tmp/tc-1d3b1ab 1d3b1ab
    .venv/bin/python benchmarks/pack_merge_memory.py --copies 1 4 16 --src /tmp/tc-1d3b1ab/src --out docs/results/pack_merge_memory-1d3b1ab.json

The bundled root is built in a temporary folder: the CPU program set and Zen 3's records
(data/bundled: real traces) copied `--copies` times under renamed task ids (copy 0 keeps the real
ids; a copy's records get their record ids), as `dataset pack` writes them. The run is what a dense2 chunk is: `--tasks` tasks of copy 0
grown to twice their programs (the new programs are other tasks' traces under this task's id:
real trace sizes; `pack` does not read a trace) and measured whole (records of every program,
`measured_at` one day later). Each size is packed in `--repeats` fresh processes (medians), each
on a fresh copy of the root: peak anonymous RSS over the process's after its imports, seconds,
and what the pack wrote (records, superseded, programs), the same in every run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anon_memory import PeakRSS, anon_rss_mb

REPO = Path(__file__).resolve().parents[1]
TARGET = "zen3-2c.avx2-t1"


def build(where: Path, copies: int, tasks: int) -> tuple[Path, Path]:
    """(bundled root, run work folder) of this size."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tensorcost import dataset
    from tensorcost.records import program_id, read_records, record_id, write_programs, write_records

    def renamed(table: pa.Table, k: int) -> pa.Table:
        if k == 0:
            return table
        col = table.schema.get_field_index("task_id")
        return table.set_column(col, "task_id", pc.binary_join_element_wise(table.column("task_id"), pa.scalar(f"-c{k}"), "")).cast(table.schema)

    src_programs = dataset.programs_dir("cpu")
    programs = pq.read_table(src_programs / "programs.parquet")
    records = read_records(dataset.bundled_records_path(TARGET))
    meta = json.loads((src_programs / "tasks.json").read_text())
    root = where / "bundled"
    dest = dataset.programs_dir("cpu", root)
    dest.mkdir(parents=True)
    write_programs(pa.concat_tables([renamed(programs, k) for k in range(copies)]), dest / "programs.parquet")
    tasks_json = dict(meta, tasks=[dict(t, task_id=t["task_id"] + (f"-c{k}" if k else "")) for k in range(copies) for t in meta["tasks"]])
    (dest / "tasks.json").write_text(json.dumps(tasks_json))
    path = dataset.bundled_records_path(TARGET, root)
    path.parent.mkdir(parents=True)
    def renamed_records(k: int) -> pa.Table:  # a copy's records under their own record ids, as a pack would write them
        table = renamed(records, k)
        ids = [record_id(TARGET, t, p) for t, p in zip(table.column("task_id").to_pylist(), table.column("program_id").to_pylist())]
        return table.set_column(table.schema.get_field_index("record_id"), "record_id", pa.array(ids, pa.string())).cast(records.schema)

    all_records = pa.concat_tables([renamed_records(k) for k in range(copies)])
    write_records(all_records.sort_by([("task_id", "ascending"), ("program_id", "ascending")]), path)

    # the run: the largest tasks of copy 0, each with as many new programs again
    counts = records.group_by("task_id").aggregate([("program_id", "count")]).sort_by([("program_id_count", "descending"), ("task_id", "ascending")])
    grown = counts.column("task_id").to_pylist()[:tasks]
    donors = programs.filter(pc.invert(pc.is_in(programs.column("task_id"), value_set=pa.array(grown))))
    work = where / "work"
    run_dir = work / "data/programs"
    run_dir.mkdir(parents=True)
    run_programs, run_records, at = [], [], 0
    for task in grown:
        held = programs.filter(pc.equal(programs.column("task_id"), task))
        new = donors.slice(at, held.num_rows)
        at += held.num_rows
        new = pa.table({"task_id": [task] * new.num_rows, "program_id": [program_id(t + f"|{task}") for t in new.column("trace").to_pylist()],
                        "trace": new.column("trace")})
        both = pa.concat_tables([held.select(["task_id", "program_id", "trace"]), new])
        run_programs.append(both)
        template = records.filter(pc.equal(records.column("task_id"), task)).slice(0, 1).to_pylist()[0]
        rows = [dict(template, program_id=p, trace=tr, record_id=record_id(TARGET, task, p), measured_at=template["measured_at"] + 86_400.0)
                for p, tr in zip(both.column("program_id").to_pylist(), both.column("trace").to_pylist())]
        run_records.append(pa.Table.from_pylist(rows, schema=records.schema))
    write_programs(pa.concat_tables(run_programs), run_dir / "programs.parquet")
    (run_dir / "tasks.json").write_text(json.dumps(dict(meta, tasks=[t for t in meta["tasks"] if t["task_id"] in grown])))
    write_records(pa.concat_tables(run_records), work / "data/raw" / TARGET / "parts/part-000000.parquet")
    return root, work


def measure(root: Path, work: Path) -> dict:
    """In this process: pack the run into the root; seconds and peak RSS over the RSS after the imports."""
    from tensorcost import dataset

    base = anon_rss_mb()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        out = dataset.pack(work, [TARGET], "cpu", root, merge=True)
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 3), "rss_after_imports_mb": round(base, 1), "peak_over_imports_mb": round(rss.peak - base, 1),
            "records": out["records"][TARGET], "superseded": out.get("records_superseded", {}).get(TARGET, 0), "tasks_extended": len(out.get("tasks_extended", []))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--tasks", type=int, default=10, help="tasks the run grows (a dense2 chunk: 10)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes a size; medians reported, ranges kept in the JSON")
    ap.add_argument("--src", default=str(REPO / "src"), help="the tensorcost package to measure (another checkout's src/ for the code before)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--measure", nargs=2, metavar=("ROOT", "WORK"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.measure:
        sys.path.insert(0, args.src)
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return
    sys.path.insert(0, str(REPO / "src"))
    import pyarrow.parquet as pq
    from tqdm import tqdm

    rows = []
    with tempfile.TemporaryDirectory(prefix="tc-pack-merge-") as tmp:
        for copies in tqdm(args.copies, desc="sizes", unit="size"):
            built = Path(tmp) / f"built-{copies}"
            root, work = build(built, copies, args.tasks)
            set_programs = pq.ParquetFile(root / "programs/cpu/programs.parquet").metadata.num_rows
            runs = []
            for _ in range(args.repeats):
                fresh = Path(tmp) / "run"
                shutil.copytree(root, fresh)
                runs.append(json.loads(subprocess.run([sys.executable, __file__, "--measure", str(fresh), str(work), "--src", args.src, "--out", "-"],
                                                      check=True, capture_output=True, text=True).stdout))
                runs[-1]["programs_after"] = pq.ParquetFile(fresh / "programs/cpu/programs.parquet").metadata.num_rows
                shutil.rmtree(fresh)
            if len({(r["records"], r["superseded"], r["programs_after"]) for r in runs}) != 1:
                raise SystemExit(f"{copies} copies: the packs wrote different datasets: {runs}")
            median = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_over_imports_mb")}
            spread = {f"{k}_range": [min(r[k] for r in runs), max(r[k] for r in runs)] for k in ("seconds", "peak_over_imports_mb")}
            rows.append({"copies": copies, "set_programs": set_programs, "repeats": args.repeats, "records_after": runs[0]["records"],
                         "superseded": runs[0]["superseded"], "programs_after": runs[0]["programs_after"], "tasks_extended": runs[0]["tasks_extended"],
                         **median, **spread})
            shutil.rmtree(built)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "src": args.src, "rows": rows}, indent=1))
    print("| programs in the set | records after | superseded | tasks grown | seconds | peak over imports (MB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['set_programs']:,} | {r['records_after']:,} | {r['superseded']:,} | {r['tasks_extended']} | {r['seconds']} | {r['peak_over_imports_mb']} |")


if __name__ == "__main__":
    main()
