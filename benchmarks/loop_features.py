"""The tiles loop by loop (tc-feat-4, issue 27 item 2): what `LOOP_FEATURE_NAMES` add to the
tree models on every split the platforms' own data is scored on, each bundled CPU platform in
turn, scored exactly as the split study scores (network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/loop_features.py --out docs/results/loop_features.json

`without` drops the loop columns from the same feature table (what tc-feat-3 gave the models: the
other columns are unchanged), `with` keeps them; same rows, same split, same preset.
"""

from __future__ import annotations

import time

from tqdm import tqdm

from common import OWN_SPLITS, bundled_feature_tables, command_line, mean_cell, pca_changes, rounded, split_sides, without_features, split_benchmark_args, write_json
from tensorcost.evaluation import ModelSpec, fit, run_study, score
from tensorcost.features.program import LOOP_FEATURE_NAMES
from tensorcost.params import load_params

SPLITS = (*OWN_SPLITS, "by_hardware")
VARIANTS = ("without", "with")


def main() -> int:
    ap = split_benchmark_args(__doc__, SPLITS)
    ap.add_argument("--presets", default="lightgbm_reg,lightgbm_rank")
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    presets, slots, splits = a.presets.split(","), a.slots.split(","), a.splits.split(",")
    specs = {name: ModelSpec.preset(p, name) for name in presets}
    full = bundled_feature_tables(slots)
    tables = {"with": full, "without": {s: without_features(t, LOOP_FEATURE_NAMES) for s, t in full.items()}}
    results: dict = {}
    own = [sp for sp in splits if sp != "by_hardware"]
    jobs = [(s, sp, name) for s in slots for sp in own for name in presets]
    for s, sp, name in tqdm(jobs, desc="slot x split x preset", unit="fit pair"):
        sides = {v: split_sides(tables[v][s], sp, split_params) for v in VARIANTS}
        if sides["with"] is None:
            continue
        for variant, (train, test) in sides.items():
            model, _ = fit(specs[name], train)
            results.setdefault(name, {}).setdefault(sp, {}).setdefault(variant, {})[s] = rounded(score(model, test))
    if "by_hardware" in splits:  # each platform held out whole, trained on the others (the split study's code)
        for variant in VARIANTS:
            metrics, _, _ = run_study(tables[variant], ["by_hardware"], specs, split_params, progress=None)
            for s in metrics:
                for name in presets:
                    r = metrics[s].get("by_hardware", {}).get(name)
                    if r:
                        results.setdefault(name, {}).setdefault("by_hardware", {}).setdefault(variant, {})[s] = rounded(r)
    write_json(a.out, {"presets": {n: specs[n].params for n in presets}, "slots": slots, "loop_features": len(LOOP_FEATURE_NAMES),
                       "results": results, "seconds": round(time.time() - t0, 1), "command": command_line(a)})
    for name in presets:
        print(f"\n{name}: PCA / top-1 / top-5, mean over {len(slots)} platforms (PCA per platform: {', '.join(s.split('.')[0] for s in slots)})\n")
        print("| split | without the loop columns | with them | PCA change per platform |")
        print("| --- | --- | --- | --- |")
        for sp in splits:
            r = results.get(name, {}).get(sp)
            if r:
                print(f"| {sp} | {mean_cell(r['without'].values())} | {mean_cell(r['with'].values())} | {pca_changes(r['with'], r['without'], slots)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
