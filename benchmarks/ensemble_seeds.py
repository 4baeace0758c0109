"""The ensemble against its members over seeds of the attention model, on the current features.

    # a worktree whose params.yaml `targets` are the bundled slots to score (no host), then:
    PATH=$PWD/.venv/bin:$PATH dvc repro featurize
    .venv/bin/python benchmarks/ensemble_seeds.py --seeds 0,1,2 --splits by_family --out reports/ensemble_seeds.json

For each slot, split and attention seed: lightgbm_reg, lightgbm_rank, the attention model with
that seed, and the `ensemble` preset of params.yaml with its attention member at that seed (the
members trained once and blended, as the train stage does). LightGBM is deterministic, so only
the attention model and the blends vary with the seed. Prints PCA / top-1 / top-5 and, per
model, the mean and range over seeds; writes every row as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tensorcost.evaluation import ModelSpec, run_study
from tensorcost.features import load_feature_table
from tensorcost.params import load_params


def specs_for_seed(p, seed: int, ensembles: list[str]) -> dict[str, ModelSpec]:
    """The reference presets, the attention preset at `seed`, and each ensemble with its
    attention members at `seed` (listed after their members, so the study blends them)."""
    specs = {k: ModelSpec.preset(p, k) for k in ("lightgbm_reg", "lightgbm_rank")}
    fam, att = p.model_spec("attention")
    specs["attention"] = ModelSpec(fam, {**att, "seed": seed})
    for name in ensembles:
        fam, params = p.model_spec(name)
        members = [m if m["family"] != "attention" else {**m, "params": {**m["params"], "seed": seed}} for m in params["members"]]
        specs[name] = ModelSpec(fam, {**params, "members": members})
    return specs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--splits", default="by_family")
    ap.add_argument("--ensembles", default="ensemble", help="ensemble presets of params.yaml")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    p = load_params()
    datasets = {slot: load_feature_table(Path("data/features"), slot, with_ms=False)[0] for slot in p.targets}
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        specs = specs_for_seed(p, seed, [e for e in args.ensembles.split(",") if e])
        metrics, _, _ = run_study(datasets, args.splits.split(","), specs, p.split.model_dump(),
                                  progress=lambda m, s=seed: print(f"seed {s}: {m}", flush=True))
        for slot, by_split in metrics.items():
            for split, by_model in by_split.items():
                for model, r in by_model.items():
                    rows.append({"slot": slot, "split": split, "seed": seed, "model": model, **{k: r[k] for k in ("pca", "top1", "top5", "n_tasks", "train_s")}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    print("\nslot | split | model | PCA | top-1 | top-5 | mean of the three (min-max over seeds)")
    for key in sorted({(r["slot"], r["split"], r["model"]) for r in rows}):
        sel = [r for r in rows if (r["slot"], r["split"], r["model"]) == key]
        mean3 = [np.mean([r["pca"], r["top1"], r["top5"]]) for r in sel]
        cells = [f"{np.mean([r[k] for r in sel]):.3f}" for k in ("pca", "top1", "top5")]
        print(f"{key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + f" | {np.mean(mean3):.3f} ({min(mean3):.3f}-{max(mean3):.3f})")


if __name__ == "__main__":
    main()
