"""Levers on the splits a platform's own data is scored on (issue 27 item 2): within_task,
by_task, by_network and by_family, each bundled CPU platform in turn, LightGBM under variants of
one preset, scored exactly as the split study scores (network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/split_levers.py --out docs/results/split_levers.json

The lever this measures first is the paper's: **train on every platform's records jointly**
(the hardware features tell the platforms apart). `own` trains on the held-out platform's training
side only (what the split study does); `pooled` adds every other CPU platform's training side of
the same split (`evaluation.joint_training_side`, as `tensorcost study --pool-platforms` does):
the same tasks (by_task, by_network, by_family hold out whole tasks, the same ones on every
platform) or the same programs (within_task hashes task and program, so a test program is test
on every platform): no test program is seen on any machine.

Variants with `params` change the preset (e.g. more leaves); `pooled` variants train on the pool.
`--splits` may add `by_hardware`: each platform's records whole against the other platforms' (own
and pooled then train alike). `--preset` may name an ensemble (its members trained here).
`--train-pca` also scores each model on its own training side: a model far above its test figure
there is limited by what carries over to new programs, one near it by what it can fit at all.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from common import OWN_SPLITS, attach_ms_features, benchmark_sides, bundled_feature_tables, command_line, split_benchmark_args, write_json
from tensorcost.evaluation import ModelSpec, fit, joint_training_side, score
from tensorcost.params import load_params

# name -> (pooled, model family (None: the preset's), preset overrides)
VARIANTS = {
    "own": (False, None, {}),
    "pooled": (True, None, {}),
    # larger trees with a floor on leaf size (5 a leaf at 31 leaves is the preset)
    "own 63 leaves": (False, None, {"num_leaves": 63, "min_data_in_leaf": 20}),
    "pooled 63 leaves": (True, None, {"num_leaves": 63, "min_data_in_leaf": 20}),
    "pooled 127 leaves": (True, None, {"num_leaves": 127, "min_data_in_leaf": 20}),
    # the regression's label as its square root (benchmarks/label_transform.py), alone and with the two above
    "own sqrt": (False, None, {"label_transform": "sqrt"}),
    "pooled sqrt": (True, None, {"label_transform": "sqrt"}),
    "pooled 63 leaves sqrt": (True, None, {"num_leaves": 63, "min_data_in_leaf": 20, "label_transform": "sqrt"}),
    # each tree on half the features; with an L2 penalty on the leaves
    "own ff0.5": (False, None, {"feature_fraction": 0.5}),
    "own ff0.5 l2": (False, None, {"feature_fraction": 0.5, "lambda_l2": 1.0}),
    "own ff0.5 sqrt": (False, None, {"feature_fraction": 0.5, "label_transform": "sqrt"}),
    "pooled 63 leaves ff0.5 sqrt": (True, None, {"num_leaves": 63, "min_data_in_leaf": 20, "feature_fraction": 0.5, "label_transform": "sqrt"}),
    # capacity: trees that can fit their training side whole, and 2.5x the rounds (with --train-pca: bias or variance?)
    "own 255 leaves": (False, None, {"num_leaves": 255, "min_data_in_leaf": 2}),
    "own 4000 rounds": (False, None, {"num_boost_round": 4000}),
    # MetaSchedule's per-store features beside ours (`lightgbm_joint`; needs --ms-dir)
    "own joint": (False, "lightgbm_joint", {}),
    "pooled joint": (True, "lightgbm_joint", {}),
}


def main() -> int:
    ap = split_benchmark_args(__doc__, OWN_SPLITS)
    ap.add_argument("--preset", default="lightgbm_reg", help="the preset the variants change (an ensemble preset: its members trained here)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {'; '.join(VARIANTS)}")
    ap.add_argument("--train-pca", action="store_true", help="also score each model on its training side")
    ap.add_argument("--ms-dir", default=None, help="MetaSchedule features of the slots (extracted there first where missing): the joint variants need them")
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    slots = a.slots.split(",")
    splits = a.splits.split(",")
    names = [v.strip() for v in a.variants.split(",")]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}; known: {'; '.join(VARIANTS)}")
    tables = bundled_feature_tables(slots)
    if any("ms_features" in ModelSpec(VARIANTS[n][1] or base.family, base.params).inputs for n in names):
        if not a.ms_dir:
            ap.error("the joint variants read MetaSchedule features: give --ms-dir")
        missing = set(slots) - attach_ms_features(tables, Path(a.ms_dir))
        if missing:
            ap.error(f"no MetaSchedule features for {sorted(missing)}")
    # by_hardware (asked for with --splits): each platform whole against the others pooled, `own` and `pooled` alike
    sides = {(s, sp): benchmark_sides(tables, s, sp, split_params) for s in slots for sp in splits}
    results: dict = {}
    for name in names:
        pooled, family, overrides = VARIANTS[name]
        spec = ModelSpec(family or base.family, {**base.params, **overrides})
        for sp in splits:
            for s in slots:
                if sides[(s, sp)] is None:
                    continue
                train, test = sides[(s, sp)]
                if pooled and sp != "by_hardware":
                    train = joint_training_side(tables, s, sp, split_params, train)
                model, train_s = fit(spec, train)
                r = score(model, test)
                results.setdefault(name, {}).setdefault(sp, {})[s] = {k: r[k] for k in ("pca", "top1", "top5", "n_tasks")} | {
                    "train_rows": len(train), "train_s": round(train_s, 2)}
                if a.train_pca:
                    results[name][sp][s]["train_pca"] = round(score(model, train)["pca"], 4)
            print(f"{name} / {sp}: " + ", ".join(f"{s.split('.')[0]} {r['pca']:.3f}" for s, r in results[name][sp].items()), flush=True)
    out = {"preset": a.preset, "params": base.params, "slots": slots, "variants": {n: {"pooled": VARIANTS[n][0], "family": VARIANTS[n][1] or base.family, "overrides": VARIANTS[n][2]} for n in names},
           "results": results, "seconds": round(time.time() - t0, 1), "command": command_line(a)}
    write_json(a.out, out)
    for sp in splits:
        print(f"\n{sp}: PCA / top-1 / top-5 (train rows, median)\n")
        print("| variant | " + " | ".join(s.split(".")[0] for s in slots) + " | mean PCA |" + (" mean training-side PCA |" if a.train_pca else ""))
        print("| --- |" + " --- |" * (len(slots) + 1 + a.train_pca))
        for name in names:
            by_slot = results[name][sp]
            cells = [" / ".join(f"{by_slot[s][m]:.3f}" for m in ("pca", "top1", "top5")) if s in by_slot else "-" for s in slots]
            print(f"| {name} ({int(np.median([r['train_rows'] for r in by_slot.values()]))}) | " + " | ".join(cells)
                  + f" | {np.mean([r['pca'] for r in by_slot.values()]):.3f} |"
                  + (f" {np.mean([r['train_pca'] for r in by_slot.values()]):.3f} |" if a.train_pca else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
