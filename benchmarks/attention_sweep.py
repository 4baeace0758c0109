"""Hyper-parameter sweep of the attention cost model on the current features (data/features/).

    .venv/bin/python benchmarks/attention_sweep.py --targets zen5-2c.avx2-t1 --splits by_network \
        --grid '{"epochs": [4, 30], "loss": ["lambdarank", "ranknet"]}' --out reports/sweep.json

Every combination of the grid (over params.yaml's `models.attention` preset) is trained on the
split's training side and scored on its test side; the `--reference` presets are trained on the
same rows. Prints PCA / top-5 / train seconds per run and writes them as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from tensorcost.evaluation import ModelSpec, fit_predict, network_weights, split_mask
from tensorcost.features import load_feature_table
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="")
    ap.add_argument("--splits", default="by_network")
    ap.add_argument("--grid", default="{}", help="JSON {param: [values]} over params.yaml's models.attention preset")
    ap.add_argument("--reference", default="lightgbm_rank,lightgbm_reg")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    p = load_params()
    grid = json.loads(args.grid)
    keys = sorted(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))] or [{}]
    results = []
    family, attention = p.model_spec("attention")
    for target in [t for t in args.targets.split(",") if t] or p.targets:
        data, meta = load_feature_table(Path("data/features"), target)
        for split in args.splits.split(","):
            mask = split_mask(split, data, p.split.model_dump())
            train, test = data.take(np.flatnonzero(~mask)), data.take(np.flatnonzero(mask))
            te = test.frame
            runs = [(m, ModelSpec.preset(p, m), {}) for m in args.reference.split(",") if m] + [("attention", ModelSpec(family, attention | c), c) for c in combos]
            for model_key, spec, combo in runs:
                scores, train_s, _ = fit_predict(spec, train, test)
                r = ranking_report(te["task_id"].tolist(), scores, te["latency_s"].to_numpy(), network_weights(te))
                row = {"target": target, "split": split, "model": model_key, "config": combo, "pca": r.pca, "top1": r.top1, "top5": r.top5, "train_s": train_s}
                results.append(row)
                print(f"{target} {split} {model_key} {json.dumps(combo)}: pca {r.pca:.3f} top1 {r.top1:.3f} top5 {r.top5:.3f} train {train_s:.1f} s", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
