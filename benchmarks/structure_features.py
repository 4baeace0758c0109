"""What the structure columns (tc-feat-5, `program.STRUCTURE_FEATURE_NAMES`: the first compute
locations, the extents MetaSchedule's postprocessor parallelizes and vectorizes) add to
`lightgbm_reg`, and the lanes' vectorized-loop pair derived from them (issue 27 item 2). Each
bundled CPU platform's own training side of each split, scored as the split study scores;
`--splits by_hardware` trains on the other platforms and scores the held-out one whole.

    .venv/bin/python benchmarks/structure_features.py --out docs/results/structure_features.json
    .venv/bin/python benchmarks/structure_features.py --splits by_hardware --out docs/results/structure_features-by_hardware.json

A variant masks columns rather than dropping them: they read what a trace without the structure
reads (`STRUCTURE_ABSENT`, constant, so no tree splits on them), and the model's inputs keep
their layout (the lanes need `vector_log_extent`: masked, their vectorized pair reads 0).
`before` is the preset as it was before tc-feat-5 (tc-feat-4 and the 18 tile lanes); `placebo`
adds three columns of noise to it: how far a change of inputs that carries nothing moves the
figures.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from common import benchmark_sides, bundled_feature_tables, command_line, mean_cell, pca_changes, rounded, split_benchmark_args, write_json
from tensorcost.evaluation import ModelSpec, fit, score
from tensorcost.features import FeatureTable
from tensorcost.features.program import STRUCTURE_ABSENT, STRUCTURE_FEATURE_NAMES
from tensorcost.params import load_params

LOCATIONS = tuple(n for n in STRUCTURE_FEATURE_NAMES if n.startswith("location_"))
EXTENTS = tuple(n for n in STRUCTURE_FEATURE_NAMES if n not in LOCATIONS)
# name -> (structure columns masked, noise columns added)
VARIANTS = {
    "before": (STRUCTURE_FEATURE_NAMES, 0),
    "placebo": (STRUCTURE_FEATURE_NAMES, 3),
    "locations": (EXTENTS, 0),
    "extents": (LOCATIONS, 0),
    "structure": ((), 0),
}


def variant_table(table: FeatureTable, masked, n_noise: int, seed: int = 7) -> FeatureTable:
    """`table` with the structure columns `masked` set to what a trace without them reads, and
    `n_noise` columns of uniform noise appended (seeded by row count: the same rows, the same noise)."""
    flat = table.flat.copy()
    names = list(table.feature_names)
    absent = dict(zip(STRUCTURE_FEATURE_NAMES, STRUCTURE_ABSENT))
    for n in masked:
        flat[:, names.index(n)] = absent[n]
    if n_noise:
        noise = np.random.default_rng(seed + len(flat)).random((len(flat), n_noise), dtype=np.float32)
        flat = np.concatenate([flat, noise], axis=1)
        names += [f"placebo_{k}" for k in range(n_noise)]
    return FeatureTable(table.frame, table.slot, table.ms_features, flat=flat, token_offsets=table.token_offsets,
                        token_rows=table.token_rows, feature_names=names, feature_schema=table.feature_schema)


def main() -> int:
    ap = split_benchmark_args(__doc__, ("within_task", "by_family"))
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    a = ap.parse_args()
    unknown = set(a.variants.split(",")) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    spec = ModelSpec.preset(p, a.preset)
    slots, splits, names = a.slots.split(","), a.splits.split(","), a.variants.split(",")
    tables = bundled_feature_tables(slots)
    results: dict = {}
    jobs = [(name, sp, s) for name in names for sp in splits for s in tables]
    current = None
    for name, sp, s in tqdm(jobs, desc="fits", unit="fit"):
        if current != name:
            current, views = name, {t: variant_table(tab, *VARIANTS[name]) for t, tab in tables.items()}
        sides = benchmark_sides(views, s, sp, split_params)
        if sides is None:
            continue
        model, secs = fit(spec, sides[0])
        results.setdefault(sp, {}).setdefault(name, {})[s] = rounded(score(model, sides[1])) | {"train_s": round(secs, 1)}
        r = results[sp][name][s]
        tqdm.write(f"{s} {sp} {name}: {r['pca']:.3f} / {r['top1']:.3f} / {r['top5']:.3f} ({secs:.0f} s)")
    write_json(a.out, {"preset": a.preset, "params": spec.params, "variants": {k: {"masked": list(VARIANTS[k][0]), "noise_columns": VARIANTS[k][1]} for k in names},
                       "slots": slots, "results": results, "seconds": round(time.time() - t0, 1), "command": command_line(a)})
    for sp, by_name in results.items():
        print(f"\n{sp}: PCA / top-1 / top-5, mean over the platforms; PCA change against `before` per platform ({', '.join(x.split('.')[0] for x in slots)})\n")
        print("| variant | mean | PCA change per platform |\n| --- | --- | --- |")
        for name, cells in by_name.items():
            changes = pca_changes(cells, by_name["before"], slots) if "before" in by_name and name != "before" else ""
            print(f"| {name} | {mean_cell(cells.values())} | {changes} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
