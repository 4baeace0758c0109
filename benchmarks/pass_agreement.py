"""How well two measuring passes of the same programs on one platform agree, task by task: the
noise ceiling a within-task ranking can reach on that data. A task grown by `sample.extend` was
measured whole again, its earlier records kept in `superseded-<variant>.parquet`; for each program
in both files, the latest earlier latency ranks today's (PCA over pairs within a task; the
pairing and figures are remeasure_distance.py's).

    .venv/bin/python benchmarks/pass_agreement.py --slot zen3-2c.avx2-t1 --min-programs 832
"""

from __future__ import annotations

import argparse
import json

from remeasure_distance import distance
from tensorcost import dataset
from tensorcost import records as rec

COLUMNS = ["task_id", "program_id", "latency_s", "error_no"]


def latest_earlier_pass(slot: str):
    """The slot's superseded records (COLUMNS), one row a program: a task grown twice holds two
    earlier passes of its first programs, and the latest of each is the one paired with today's."""
    before = rec.read_records(dataset.superseded_records_path(slot)).to_pandas()[COLUMNS + ["measured_at"]]
    return before.sort_values("measured_at", kind="stable").drop_duplicates(["task_id", "program_id"], keep="last")[COLUMNS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--min-programs", type=int, default=416, help="tasks holding at least this many valid records now")
    a = ap.parse_args()
    now = dataset.bundled_tables([a.slot])[a.slot].to_pandas()[COLUMNS]
    held = now[now.error_no == 0].groupby("task_id").size()
    tasks = held[held >= a.min_programs].index
    latest = latest_earlier_pass(a.slot)
    latest, now = latest[latest.task_id.isin(tasks)], now[now.task_id.isin(tasks)]
    whole = distance(latest, now)
    out = {"slot": a.slot, "min_programs": a.min_programs, "tasks": len(tasks), "programs_in_both": whole["programs"], "pca": round(whole["pca"], 3),
           "per_task": {t: round(distance(g, now[now.task_id == t])["pca"], 3) for t, g in latest.groupby("task_id")}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
