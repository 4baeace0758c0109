"""Does data or do features limit within-task ranking? A learning curve over programs per task
(issue 27 item 2): each model trained on n programs of every training task, n = 8, 16, ...,
all, scored on one fixed test side, next to the noise ceiling (two measurement passes of the same
programs ranked against each other). A curve still rising at its last point says more programs
would help; a flat one, that the features (or the model) are the limit.

    .venv/bin/python benchmarks/programs_per_task.py --slot zen4-2c.avx2-t1 \
        --models lightgbm_reg,lightgbm_joint --out reports/analysis/programs_per_task-zen4.json

Reads the slot's feature table (featurize and, for models reading them, msfeatures stages) and
params.yaml's `split` (within_task: the test side is a share of every task's programs) and model
presets. Several seeds draw the n programs; the JSON holds every seed's figures, the table
their median.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tensorcost.evaluation import ModelSpec, fit, score, train_test
from tensorcost.features import load_feature_table
from tensorcost.params import load_params


def take_per_task(table, n: int, seed: int):
    """`table`'s rows, at most n programs of each task, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    tasks = table.frame["task_id"].to_numpy()
    keep = []
    for t in np.unique(tasks):
        rows = np.flatnonzero(tasks == t)
        keep.append(rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False)))
    return table.take(np.sort(np.concatenate(keep)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", required=True)
    ap.add_argument("--models", default="lightgbm_reg,lightgbm_joint")
    ap.add_argument("--sizes", default="8,16,32,64,0", help="programs per training task (0: all)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--features-dir", default="data/features")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    p = load_params()
    specs = {k: ModelSpec.preset(p, k) for k in a.models.split(",")}
    table, meta = load_feature_table(Path(a.features_dir), a.slot, with_ms=any("ms_features" in s.inputs for s in specs.values()))
    split = p.split.model_dump() | {"strategy": "within_task"}
    train, test = train_test(table, "within_task", split)
    sizes = [int(x) for x in a.sizes.split(",")]
    per_task = int(train.frame.groupby("task_id").size().max())
    rows: list[dict] = []
    jobs = [(n, s, k) for n in sizes for s in (range(a.seeds) if 0 < n < per_task else [0]) for k in specs]
    for n, seed, key in tqdm(jobs, desc=f"{a.slot} programs/task", unit="fit"):
        part = train if n <= 0 or n >= per_task else take_per_task(train, n, seed)
        model, train_s = fit(specs[key], part)
        rows.append({"programs_per_task": n if 0 < n < per_task else per_task, "seed": seed, "model": key, "n_train": len(part),
                     "train_s": train_s, **{m: score(model, test)[m] for m in ("pca", "top1", "top5")}})
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"slot": a.slot, "split": "within_task", "test_tasks": int(test.frame["task_id"].nunique()),
                                       "test_records": len(test), "rows": rows}, indent=1))
    print(f"| programs per task | " + " | ".join(specs) + " |")
    print("| --- |" + " --- |" * len(specs))
    for n in sorted({r["programs_per_task"] for r in rows}):
        cells = []
        for key in specs:
            rs = [r for r in rows if r["programs_per_task"] == n and r["model"] == key]
            cells.append(" / ".join(f"{np.median([r[m] for r in rs]):.3f}" for m in ("pca", "top1", "top5")))
        print(f"| {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
