"""Where the within-task gap is (issue 27 item 2): per task of a slot's within_task test side, the
model's PCA against the two-pass agreement of the same task's programs (pass_agreement.py's
pairing, `latest_earlier_pass`: the latest earlier pass of a grown task against today's), grouped by operator kind.

    .venv/bin/python benchmarks/within_task_gap.py --slot zen3-2c.avx2-t1 --pooled --out docs/results/within_task_gap-zen3-2c.json

`--pooled` trains as denser_tasks.py's pooled variant (the other CPU platforms' training sides,
63 leaves, sqrt labels); the model is the preset's otherwise.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from common import CPU_SLOTS, bundled_feature_tables, command_line, split_sides, write_json
from denser_tasks import POOLED_BEST
from pass_agreement import COLUMNS, latest_earlier_pass
from remeasure_distance import distance
from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, fit, joint_training_side, predict
from tensorcost.metrics import pairwise_counts
from tensorcost.params import load_params

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--pooled", action="store_true")
    ap.add_argument("--min-pairs", type=int, default=20, help="a task's agreement counts where both passes share this many programs")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    spec = ModelSpec.preset(p, a.preset)
    if a.pooled:
        spec = ModelSpec(spec.family, {**spec.params, **POOLED_BEST})
    tables = bundled_feature_tables([a.slot] + ([s for s in CPU_SLOTS if s != a.slot] if a.pooled else []))
    train, test = split_sides(tables[a.slot], "within_task", split_params)
    model, _ = fit(spec, joint_training_side(tables, a.slot, "within_task", split_params, train) if a.pooled else train)
    f = test.frame.assign(score=predict(model, test))
    raw = dataset.bundled_tables([a.slot])[a.slot].to_pandas()
    op_of = raw.drop_duplicates("task_id").set_index("task_id")["op_kind"]
    now = raw[COLUMNS]
    latest = latest_earlier_pass(a.slot)
    rows = []
    for task, g in f.groupby("task_id"):
        good, pairs = pairwise_counts(g["score"].to_numpy(), g["latency_s"].to_numpy())
        earlier = latest[latest.task_id == task]
        agree = distance(earlier, now[now.task_id == task])["pca"] if len(earlier) >= a.min_pairs else float("nan")
        rows.append({"task_id": task, "op_kind": op_of.get(task, "?"), "test_programs": len(g), "pairs": int(pairs),
                     "pca": good / max(pairs, 1), "two_pass_agreement": agree})
    per_task = pd.DataFrame(rows)
    by_op = {op: {"tasks": len(g), "pairs": int(g.pairs.sum()), "pca": float(np.average(g.pca, weights=g.pairs)),
                  "two_pass_agreement": float(np.nanmean(g.two_pass_agreement)) if g.two_pass_agreement.notna().any() else None}
             for op, g in per_task.groupby("op_kind")}
    write_json(a.out, {"slot": a.slot, "preset": a.preset, "params": spec.params, "by_op_kind": by_op,
                       "per_task": per_task.round(4).to_dict(orient="records"), "seconds": round(time.time() - t0, 1), "command": command_line(a)})
    print("| operator kind | tasks | test pairs | model PCA | two-pass agreement (mean a task) |\n| --- | --- | --- | --- | --- |")
    for op, v in sorted(by_op.items(), key=lambda kv: -kv[1]["pairs"]):
        agree = f"{v['two_pass_agreement']:.3f}" if v["two_pass_agreement"] is not None else "-"
        print(f"| {op} | {v['tasks']} | {v['pairs']:,} | {v['pca']:.3f} | {agree} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
