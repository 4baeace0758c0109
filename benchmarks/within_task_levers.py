"""What is left to pull for within-task ranking (issue 27 item 2), once more programs a task
stopped helping (denser_tasks.py): the label the trees fit, their size, the hardware x program
lane columns (`lane_features`), and MetaSchedule's per-store features with the main store's row
(`lightgbm_joint`, `ms_pooling`). Each bundled CPU platform's own training side of each split,
scored as the split study scores (network-weighted PCA / top-1 / top-5); `--splits by_hardware`
trains on the other platforms of --slots and scores the whole platform (what a new machine's
zero-shot model meets; programs other platforms measured are among them).

    .venv/bin/python benchmarks/within_task_levers.py --out docs/results/within_task_levers.json
    .venv/bin/python benchmarks/within_task_levers.py --splits by_hardware --variants "preset;lanes;sqrt, lanes" --out ...
    # the joint variants read MetaSchedule features of each slot's records from --ms-dir, extracted
    # there first where missing (the msfeatures stage's function; ~16 min for Zen 3's records):
    .venv/bin/python benchmarks/within_task_levers.py --ms-dir /tmp/msfeatures --out ...

A lever is kept where it measures better on the platforms as a whole, not on one. Every
variant starts from --preset with `lane_features` off (`preset` below is lightgbm_reg as it was
before the lanes were kept, twenty-sixth session), so the figures do not move with the preset.
The committed results were featurized with tc-feat-4; since tc-feat-5 every variant also reads the
structure columns (benchmarks/structure_features.py measures those).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from common import attach_ms_features, benchmark_sides, bundled_feature_tables, command_line, mean_cell, pca_changes, rounded, split_benchmark_args, write_json
from tensorcost.evaluation import ModelSpec, fit, score
from tensorcost.params import load_params

WIDE = {"num_leaves": 127, "min_data_in_leaf": 20}
# name -> (family: the preset's or lightgbm_joint, params over the preset's)
VARIANTS = {
    "preset": (None, {}),
    "lanes": (None, {"lane_features": True}),
    "sqrt": (None, {"label_transform": "sqrt"}),
    "sqrt, lanes": (None, {"label_transform": "sqrt", "lane_features": True}),
    "log": (None, {"label_transform": "log"}),
    "127 leaves, log": (None, {**WIDE, "label_transform": "log"}),
    "127 leaves, log, lanes": (None, {**WIDE, "label_transform": "log", "lane_features": True}),
    "127 leaves, sqrt, lanes": (None, {**WIDE, "label_transform": "sqrt", "lane_features": True}),
}
JOINT_VARIANTS = {
    "joint, 127 leaves, log": ("lightgbm_joint", {**WIDE, "label_transform": "log"}),
    "joint + main store, 127 leaves, log": ("lightgbm_joint", {**WIDE, "label_transform": "log", "ms_pooling": "mean_max_main"}),
    "joint + main store, 127 leaves, log, lanes": ("lightgbm_joint", {**WIDE, "label_transform": "log", "ms_pooling": "mean_max_main", "lane_features": True}),
    # the preset since the twenty-eighth session (sqrt, lanes) with MetaSchedule's features beside ours
    "joint, sqrt, lanes": ("lightgbm_joint", {"label_transform": "sqrt", "lane_features": True}),
    "joint + main store, sqrt, lanes": ("lightgbm_joint", {"label_transform": "sqrt", "ms_pooling": "mean_max_main", "lane_features": True}),
}


def main() -> int:
    ap = split_benchmark_args(__doc__, ("within_task", "by_family"))
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--ms-dir", default=None, help="a directory of MetaSchedule features (<slot>.ms_index.parquet, <slot>.ms_rows.npy; "
                                                   "extracted there first where missing): adds the joint variants")
    ap.add_argument("--variants", default=None, help="semicolon-separated names (names hold commas; default: all that the data allows)")
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    slots, splits = a.slots.split(","), a.splits.split(",")
    tables = bundled_feature_tables(slots)
    with_ms = attach_ms_features(tables, Path(a.ms_dir)) if a.ms_dir else set()
    variants = VARIANTS | (JOINT_VARIANTS if with_ms else {})
    if a.variants:
        unknown = set(a.variants.split(";")) - set(variants)
        if unknown:
            raise SystemExit(f"--variants: unknown {sorted(unknown)}; known: {sorted(variants)}")
        variants = {k: v for k, v in variants.items() if k in a.variants.split(";")}
    results: dict = {}
    jobs = [(s, sp, name) for s in tables for sp in splits for name in variants if s in with_ms or variants[name][0] is None]
    sides = {}
    for s, sp, name in tqdm(jobs, desc="fits", unit="fit"):
        if (s, sp) not in sides:  # by_hardware: the other platforms' records pooled against this one's (needs them in --slots)
            sides[(s, sp)] = benchmark_sides(tables, s, sp, split_params)
        if sides[(s, sp)] is None:
            continue
        train, test = sides[(s, sp)]
        family, params = variants[name]
        model, secs = fit(ModelSpec(family or base.family, {**base.params, "lane_features": False, **params}), train)
        results.setdefault(sp, {}).setdefault(name, {})[s] = rounded(score(model, test)) | {"train_s": round(secs, 1)}
        tqdm.write(f"{s} {sp} {name}: " + " / ".join(f"{results[sp][name][s][k]:.3f}" for k in ("pca", "top1", "top5")) + f" ({secs:.0f} s)")
    write_json(a.out, {"preset": a.preset, "params": {**base.params, "lane_features": False}, "variants": {k: {"family": v[0] or base.family, "params": v[1]} for k, v in variants.items()},
                       "slots": slots, "ms_slots": sorted(with_ms), "results": results, "seconds": round(time.time() - t0, 1), "command": command_line(a)})
    for sp, by_name in results.items():
        names = list(by_name)
        print(f"\n{sp}: PCA / top-1 / top-5, mean over the platforms each variant ran on; PCA change against `preset` per platform ({', '.join(x.split('.')[0] for x in slots)})\n")
        print("| variant | platforms | mean | PCA change per platform |\n| --- | --- | --- | --- |")
        for name in names:
            changes = pca_changes(by_name[name], by_name["preset"], slots) if "preset" in by_name and name != "preset" else ""
            print(f"| {name} | {len(by_name[name])} | {mean_cell(by_name[name].values())} | {changes} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
