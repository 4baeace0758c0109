"""Why does TVM's XGBoost rank an unseen CPU better than our LightGBM? Levers on by_hardware
(issue 27 item 2): each bundled CPU platform held out in turn, LightGBM trained on the others'
records under variants of one preset, scored on the held-out platform's programs exactly as the
split study scores them (`evaluation.run_study`, network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/by_hardware_levers.py --out docs/results/by_hardware_levers.json

    .venv/bin/python benchmarks/by_hardware_levers.py --splits within_task,by_family --out docs/results/levers_other_splits.json

Variants: the preset as it is; without the hardware features (the `hw_*` columns zeroed: constant
on every training platform's rows, they let trees split on the platform's identity, which an unseen
platform's values never match); with `group_relative` features (each feature's deviation from its
task's mean); both; and longer training (4x and 8x the rounds at the same rate). TVM's XGBoost reads
MetaSchedule's per-store features, which this script does not extract (the msfeatures stage
does); its figures on the same held-out platforms are in the committed split study
(docs/results/split-study/, `tvm_xgb` under by_hardware).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import CPU_SLOTS, bundled_feature_tables, write_json
from tensorcost.evaluation import ModelSpec, run_study
from tensorcost.features import FeatureTable
from tensorcost.params import load_params


def without_hardware(table: FeatureTable) -> FeatureTable:
    """The same rows with every `hw_*` feature zeroed, except `hw_is_gpu` (the kind a study
    pools by); a constant column is one LightGBM never splits on."""
    names = table.feature_names or []
    cols = [i for i, n in enumerate(names) if n.startswith("hw_") and n != "hw_is_gpu"]
    out = table.take(np.arange(len(table)))
    flat = out.flat.copy()
    flat[:, cols] = 0.0
    out.flat = flat
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--slots", default=",".join(CPU_SLOTS))
    ap.add_argument("--splits", default="by_hardware", help="split strategies (params.yaml's split params)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    base = ModelSpec.preset(p, a.preset)
    slots = a.slots.split(",")
    tables = bundled_feature_tables(slots)
    masked = {s: without_hardware(t) for s, t in tables.items()}
    rounds = int(base.params.get("num_boost_round", 200))
    variants = {
        "as is": (tables, base),
        "no hardware features": (masked, base),
        "group_relative": (tables, ModelSpec(base.family, {**base.params, "group_relative": True})),
        "group_relative, no hardware features": (masked, ModelSpec(base.family, {**base.params, "group_relative": True})),
        f"{4 * rounds} rounds": (tables, ModelSpec(base.family, {**base.params, "num_boost_round": 4 * rounds})),
        f"{8 * rounds} rounds": (tables, ModelSpec(base.family, {**base.params, "num_boost_round": 8 * rounds})),
        f"{4 * rounds} rounds, group_relative, no hardware features": (masked, ModelSpec(base.family, {**base.params, "num_boost_round": 4 * rounds,
                                                                                                   "group_relative": True})),
    }
    splits = a.splits.split(",")
    results = {}
    for name, (data, spec) in variants.items():
        metrics, _, _ = run_study(data, splits, {a.preset: spec}, p.split.model_dump(), progress=None)
        results[name] = {sp: {s: {k: metrics[s][sp][a.preset][k] for k in ("pca", "top1", "top5", "peak5", "train_s")} for s in metrics if sp in metrics[s]}
                         for sp in splits}
        for sp in splits:
            print(f"{name} / {sp}: " + ", ".join(f"{s.split('.')[0]} {r['pca']:.3f}" for s, r in results[name][sp].items()), flush=True)
    xgb: dict = {}
    study = Path(__file__).resolve().parents[1] / "docs" / "results" / "split-study"
    for sp in splits:
        for s in slots:
            f = study / f"{s}.json"
            r = json.loads(f.read_text())[s].get(sp, {}).get("tvm_xgb") if f.exists() else None
            if r:
                xgb.setdefault(sp, {})[s] = {k: r[k] for k in ("pca", "top1", "top5")}
    out = {"preset": a.preset, "slots": slots, "records": {s: len(t) for s, t in tables.items()}, "variants": results,
           "tvm_xgb_from_split_study": xgb, "seconds": round(time.time() - t0, 1)}
    write_json(a.out, out)
    for sp in splits:
        print(f"\n{sp}: PCA / top-1 / top-5\n")
        print("| variant | " + " | ".join(s.split(".")[0] for s in slots) + " | train s (median) |")
        print("| --- |" + " --- |" * (len(slots) + 1))
        for name, by_split in results.items():
            by_slot = by_split[sp]
            cells = [" / ".join(f"{by_slot[s][m]:.3f}" for m in ("pca", "top1", "top5")) if s in by_slot else "-" for s in slots]
            print(f"| {name} | " + " | ".join(cells) + f" | {np.median([r['train_s'] for r in by_slot.values()]):.1f} |")
        if sp in xgb:
            print("| tvm_xgb (split study) | " + " | ".join(" / ".join(f"{xgb[sp][s][m]:.3f}" for m in ("pca", "top1", "top5")) if s in xgb[sp] else "-"
                                                          for s in slots) + " | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
