"""How well two measuring passes of the same programs on one platform agree, task by task: the
noise ceiling a within-task ranking can reach on that data. A task grown by `sample.extend` was
measured whole again, its earlier records kept in `superseded-<variant>.parquet`; for each program
in both files, the latest earlier latency ranks today's (PCA over pairs within a task).

    .venv/bin/python benchmarks/pass_agreement.py --platform zen3-2c --variant avx2-t1 --min-programs 832
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq

from tensorcost.metrics import pairwise_comparison_accuracy

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["task_id", "program_id", "latency_s", "error_no", "measured_at"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", default="zen3-2c")
    ap.add_argument("--variant", default="avx2-t1")
    ap.add_argument("--min-programs", type=int, default=416, help="tasks holding at least this many valid records now")
    a = ap.parse_args()
    root = REPO / "data/bundled/platforms" / a.platform
    now = pq.read_table(root / f"{a.variant}.parquet", columns=COLUMNS).to_pandas()
    before = pq.read_table(root / f"superseded-{a.variant}.parquet", columns=COLUMNS).to_pandas()
    now, before = now[now.error_no == 0], before[before.error_no == 0]
    held = now.groupby("task_id").size()
    tasks = held[held >= a.min_programs].index
    before = before.sort_values("measured_at").groupby(["task_id", "program_id"]).tail(1)  # the latest earlier pass
    both = now[now.task_id.isin(tasks)].merge(before, on=["task_id", "program_id"], suffixes=("", "_before"))

    def pca(rows):
        return round(pairwise_comparison_accuracy(rows.task_id.to_numpy(), -rows.latency_s_before.to_numpy(), rows.latency_s.to_numpy()), 3)

    out = {"platform": a.platform, "variant": a.variant, "min_programs": a.min_programs, "tasks": len(tasks), "programs_in_both": len(both),
           "pca": pca(both), "per_task": {t: pca(g) for t, g in both.groupby("task_id")}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
