"""Does this code reproduce another version's figures on that version's own features?

    .venv/bin/python benchmarks/reproduce_reports.py --run-dir ../baseline --attention-epochs 4

RUN_DIR is a checkout where an earlier tensorcost ran `dvc repro evaluate transfer` (its
data/features, reports/ and models/ are read, nothing there is written). With its params
(a raw params.yaml of that version), this script recomputes with the current code:
- the split study (every model x split x target of its evaluate.json),
- the transfer study (its source model's artifact, zero-shot, fine-tuned, from scratch, peers),
and prints the largest absolute difference of PCA / top-1 / top-5 per report. Training is
deterministic, so a pure refactoring must print 0 everywhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from tensorcost.evaluation import ModelSpec, run_study
from tensorcost.features import load_feature_table
from tensorcost.models import load_model
from tensorcost.transfer import transfer_study


def _specs(p: dict, attention_epochs: int | None) -> dict[str, ModelSpec]:
    """The study's models as that version defined them (train.lightgbm and attention sections)."""
    lgb = {k: v for k, v in p["train"]["lightgbm"].items() if k != "objective"}
    att = dict(p["attention"])
    if attention_epochs:
        att["epochs"] = attention_epochs
    tp = p.get("transfer", {})
    att.update({k: tp[k] for k in ("finetune_epochs", "finetune_steps", "finetune_lr") if k in tp})
    return {"lightgbm_rank": ModelSpec("lightgbm", {**lgb, "objective": "lambdarank"}), "lightgbm_reg": ModelSpec("lightgbm", {**lgb, "objective": "regression"}),
            "tvm_xgb": ModelSpec("tvm_xgb"), "attention": ModelSpec("attention", att), "random": ModelSpec("random", {"seed": int(p["split"].get("seed", 0))})}


def _max_diff(a: dict, b: dict, keys=("pca", "top1", "top5")) -> tuple[float, int]:
    worst, n = 0.0, 0
    for k, v in a.items():
        if isinstance(v, dict) and k in b:
            w, m = _max_diff(v, b[k], keys)
            worst, n = max(worst, w), n + m
        elif k in keys and k in b and v is not None and b[k] is not None:
            worst, n = max(worst, abs(float(v) - float(b[k]))), n + 1
    return worst, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--attention-epochs", type=int, default=None, help="the epochs that run's params used, if overridden")
    args = ap.parse_args()
    run = args.run_dir
    p = yaml.safe_load((run / "params.yaml").read_text())
    specs = _specs(p, args.attention_epochs)
    features = run / "data/features"

    old = json.loads((run / "reports/metrics/evaluate.json").read_text())
    models = sorted({m for by_split in old.values() for by_model in by_split.values() for m in by_model})
    splits = sorted({s for by_split in old.values() for s in by_split})
    tables = {t: load_feature_table(features, t, with_ms=True)[0] for t in old}
    split_params = {k: v for k, v in p["split"].items() if k != "strategy"}
    new, _, _ = run_study(tables, splits, {m: specs[m] for m in models}, split_params)
    worst, n = _max_diff(old, new)
    print(f"evaluate.json: {n} figures (targets {sorted(old)}, splits {splits}, models {models}); largest |difference| {worst:.6f}")

    old_t = json.loads((run / "reports/metrics/transfer.json").read_text())
    study = json.loads((run / "reports/transfer/study.json").read_text())
    source = study["source"]
    source_model = load_model(run / "models" / f"attention-{source}")
    tp = p["transfer"]
    for target, curves in old_t.items():
        data, _ = load_feature_table(features, target, with_ms=True)
        peers = {"scratch": specs["attention"], **{k: specs[k] for k in ("lightgbm_rank", "tvm_xgb") if k in tp["approaches"]}}
        new_curves = transfer_study({source: source_model}, data, [float(k) for k in tp["fractions"]], peers, test_fraction=float(tp["test_fraction"]),
                                    seed=int(tp["seed"])).curves
        renamed = {("zero_shot" if k == f"zero_shot:{source}" else "finetune" if k == f"finetune:{source}" else k): v for k, v in new_curves.items()}
        worst, n = _max_diff(curves, renamed)
        print(f"transfer.json {source} -> {target}: {n} figures; largest |difference| {worst:.6f}")


if __name__ == "__main__":
    main()
