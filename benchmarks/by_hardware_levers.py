"""Why does TVM's XGBoost rank an unseen CPU better than our LightGBM? Levers on by_hardware
(issue 27 item 2): each bundled CPU platform held out in turn, LightGBM trained on the others'
records under variants of one preset, scored on the held-out platform's programs exactly as the
split study scores them (`evaluation.run_study`, network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/by_hardware_levers.py --out docs/results/by_hardware_levers.json

Variants: the preset as it is; without the hardware features (the `hw_*` columns zeroed: constant
on every training platform's rows, they let trees split on the platform's identity, which an unseen
platform's values never match); with `group_relative` features (each feature's deviation from its
task's mean); both; and longer training (4x the rounds at the same rate). TVM's XGBoost reads
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

from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, run_study
from tensorcost.features import FeatureTable, featurize_records
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.params import load_params

CPU_SLOTS = ("sapphirerapids-2c-0ceb.avx2-t1", "sapphirerapids-2c.avx2-t1", "zen3-2c.avx2-t1", "zen4-2c.avx2-t1", "zen5-2c.avx2-t1")


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
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    base = ModelSpec.preset(p, a.preset)
    slots = a.slots.split(",")
    raw = dataset.bundled_tables(slots)
    tables = {s: featurize_records(raw[s], catalog_target(s).features(), HARDWARE_FEATURE_NAMES, slot=s) for s in slots}
    masked = {s: without_hardware(t) for s, t in tables.items()}
    rounds = int(base.params.get("num_boost_round", 200))
    variants = {
        "as is": (tables, base),
        "no hardware features": (masked, base),
        "group_relative": (tables, ModelSpec(base.family, {**base.params, "group_relative": True})),
        "group_relative, no hardware features": (masked, ModelSpec(base.family, {**base.params, "group_relative": True})),
        f"{4 * rounds} rounds": (tables, ModelSpec(base.family, {**base.params, "num_boost_round": 4 * rounds})),
    }
    results = {}
    for name, (data, spec) in variants.items():
        metrics, _, _ = run_study(data, ["by_hardware"], {a.preset: spec}, p.split.model_dump(), progress=None)
        results[name] = {s: {k: metrics[s]["by_hardware"][a.preset][k] for k in ("pca", "top1", "top5", "peak5", "train_s")} for s in metrics}
        print(f"{name}: " + ", ".join(f"{s.split('.')[0]} {r['pca']:.3f}" for s, r in results[name].items()), flush=True)
    xgb = {}
    study = Path(__file__).resolve().parents[1] / "docs" / "results" / "split-study"
    for s in slots:
        f = study / f"{s}.json"
        if f.exists():
            r = json.loads(f.read_text())[s]["by_hardware"].get("tvm_xgb")
            if r:
                xgb[s] = {k: r[k] for k in ("pca", "top1", "top5")}
    out = {"preset": a.preset, "slots": slots, "records": {s: len(t) for s, t in tables.items()}, "variants": results,
           "tvm_xgb_from_split_study": xgb, "seconds": round(time.time() - t0, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print("| variant | " + " | ".join(s.split(".")[0] for s in slots) + " |")
    print("| --- |" + " --- |" * len(slots))
    for name, by_slot in results.items():
        print(f"| {name} | " + " | ".join(" / ".join(f"{by_slot[s][m]:.3f}" for m in ("pca", "top1", "top5")) for s in slots) + " |")
    if xgb:
        print("| tvm_xgb (split study) | " + " | ".join(" / ".join(f"{xgb[s][m]:.3f}" for m in ("pca", "top1", "top5")) if s in xgb else "-" for s in slots) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
