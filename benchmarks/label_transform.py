"""What the regression trees fit (issue 27 item 2): `lightgbm_reg` with `label_transform`
identity (TenSet's label, `min_latency / latency`) against sqrt and log2, on the splits a platform's own
data is scored on, each bundled CPU platform in turn, scored as the split study scores
(network-weighted PCA / top-1 / top-5); `--splits by_hardware` trains on the other platforms and
scores the held-out one whole. A transform `a+b` is the blend of the two fits (the `ensemble`
family: each member's scores over their within-task spread, averaged).

    .venv/bin/python benchmarks/label_transform.py --out docs/results/label_transform.json
    .venv/bin/python benchmarks/label_transform.py --splits by_hardware --out docs/results/label_transform-by_hardware.json
"""

from __future__ import annotations

import time

from tqdm import tqdm

from common import OWN_SPLITS, benchmark_sides, bundled_feature_tables, command_line, mean_cell, pca_changes, rounded, split_benchmark_args, write_json
from tensorcost.evaluation import ModelSpec, fit, score
from tensorcost.params import load_params

TRANSFORMS = ("identity", "sqrt", "log")


def transform_spec(base: ModelSpec, transform: str) -> ModelSpec:
    """The preset with `label_transform` set; `a+b`: an ensemble of the preset under each."""
    parts = transform.split("+")
    if len(parts) == 1:
        return ModelSpec(base.family, {**base.params, "label_transform": transform})
    members = [{"name": f"{base.family}_{t}", "family": base.family, "params": {**base.params, "label_transform": t}, "weight": 1.0} for t in parts]
    return ModelSpec("ensemble", {"members": members})


def main() -> int:
    ap = split_benchmark_args(__doc__, OWN_SPLITS)
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--transforms", default=",".join(TRANSFORMS), help="label_transform values, identity first (the changes are against it); a+b blends two")
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    slots, splits, transforms = a.slots.split(","), a.splits.split(","), a.transforms.split(",")
    results: dict = {}
    tables = bundled_feature_tables(slots)
    for s in tqdm(tables, desc="platforms", unit="platform"):
        for sp in splits:
            sides = benchmark_sides(tables, s, sp, split_params)
            if sides is None:
                continue
            train, test = sides
            for tf in transforms:
                model, _ = fit(transform_spec(base, tf), train)
                results.setdefault(sp, {}).setdefault(tf, {})[s] = rounded(score(model, test))
    write_json(a.out, {"preset": a.preset, "params": base.params, "slots": slots, "results": results, "seconds": round(time.time() - t0, 1),
                       "command": command_line(a)})
    print(f"\n{a.preset}: PCA / top-1 / top-5, mean over {len(slots)} platforms; PCA change per platform ({', '.join(s.split('.')[0] for s in slots)})\n")
    print("| split | " + " | ".join(transforms) + " | " + " | ".join(f"PCA change per platform, {tf}" for tf in transforms[1:]) + " |")
    print("| --- |" + " --- |" * (2 * len(transforms) - 1))
    for sp, by_tf in results.items():
        print(f"| {sp} | " + " | ".join(mean_cell(by_tf[tf].values()) for tf in transforms)
              + "".join(f" | {pca_changes(by_tf[tf], by_tf[transforms[0]], slots)}" for tf in transforms[1:]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
