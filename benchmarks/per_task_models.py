"""Is within-task ranking bound by the features or by one model over all tasks? On a platform's
tasks that hold at least --min-programs programs: the preset trained once on every task's
within_task training side (the split table's model) against one model a task, trained on that
task's training side alone, both scored on the same within_task test side of those tasks.

    .venv/bin/python benchmarks/per_task_models.py --slot zen3-2c.avx2-t1 --min-programs 832 --out docs/results/per_task_models-832-zen3-2c.json

If a task's own model ranks its programs no better than the shared one, the features (not the
pooling over tasks) bound it; the two-pass agreement of the same programs
(benchmarks/pass_agreement.py) is the ceiling either way.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from common import bundled_feature_tables, command_line, rounded, split_sides, write_json
from tensorcost.evaluation import ModelSpec, fit, score
from tensorcost.params import load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--min-programs", type=int, default=832)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.perf_counter()
    p = load_params()
    table = bundled_feature_tables([a.slot])[a.slot]
    train, test = split_sides(table, "within_task", p.split.model_dump())
    held = table.frame.groupby("task_id").size()
    tasks = sorted(held[held >= a.min_programs].index)
    if not tasks:
        raise SystemExit(f"{a.slot}: no task holds {a.min_programs} valid programs")
    spec = ModelSpec.preset(p, a.preset)
    shared, _ = fit(spec, train)
    on = test.take(np.flatnonzero(test.frame["task_id"].isin(tasks).to_numpy()))
    result = {"slot": a.slot, "preset": a.preset, "min_programs": a.min_programs, "tasks": len(tasks), "test_programs": len(on),
              "shared": rounded(score(shared, on)), "per_task": {}}
    for task in tqdm(tasks, desc="a model a task", unit="task"):
        own_train = train.take(np.flatnonzero((train.frame["task_id"] == task).to_numpy()))
        own_test = on.take(np.flatnonzero((on.frame["task_id"] == task).to_numpy()))
        own, _ = fit(spec, own_train)
        result["per_task"][task] = {"train_programs": len(own_train), "own": rounded(score(own, own_test)), "shared": rounded(score(shared, own_test))}
    per = result["per_task"].values()
    result["own_mean_pca"] = round(float(np.mean([r["own"]["pca"] for r in per])), 4)
    result["shared_mean_pca"] = round(float(np.mean([r["shared"]["pca"] for r in per])), 4)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["command"] = command_line(a)
    write_json(a.out, result)
    print(f"{len(tasks)} tasks, {len(on)} test programs: shared model {result['shared']['pca']:.3f}; mean a task: shared {result['shared_mean_pca']:.3f}, "
          f"own {result['own_mean_pca']:.3f}")
    for task, r in result["per_task"].items():
        print(f"  {task}: {r['train_programs']} training programs, own {r['own']['pca']:.3f}, shared {r['shared']['pca']:.3f}")


if __name__ == "__main__":
    main()
