"""What the regression trees fit (issue 27 item 2): `lightgbm_reg` with `label_transform`
identity (TenSet's label, `min_latency / latency`) against sqrt and log2, on the splits a platform's own
data is scored on, each bundled CPU platform in turn, scored as the split study scores
(network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/label_transform.py --out docs/results/label_transform.json
"""

from __future__ import annotations

import time

from tqdm import tqdm

from common import OWN_SPLITS, bundled_feature_tables, command_line, mean_cell, pca_changes, rounded, split_sides, split_benchmark_args, write_json
from tensorcost.evaluation import ModelSpec, fit, score
from tensorcost.params import load_params

TRANSFORMS = ("identity", "sqrt", "log")


def main() -> int:
    ap = split_benchmark_args(__doc__, OWN_SPLITS)
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--transforms", default=",".join(TRANSFORMS), help="label_transform values, identity first (the changes are against it)")
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    slots, splits, transforms = a.slots.split(","), a.splits.split(","), a.transforms.split(",")
    results: dict = {}
    for s, table in tqdm(bundled_feature_tables(slots).items(), desc="platforms", unit="platform"):
        for sp in splits:
            sides = split_sides(table, sp, split_params)
            if sides is None:
                continue
            train, test = sides
            for tf in transforms:
                model, _ = fit(ModelSpec(base.family, {**base.params, "label_transform": tf}), train)
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
