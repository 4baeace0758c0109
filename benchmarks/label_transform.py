"""What the regression trees fit (issue 27 item 2): `lightgbm_reg` with `label_transform`
identity (TenSet's label, `min_latency / latency`) against sqrt, on the splits a platform's own
data is scored on, each bundled CPU platform in turn, scored as the split study scores
(network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/label_transform.py --out docs/results/label_transform.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from loop_features import CPU_SLOTS
from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, fit, network_weights, predict, split_mask
from tensorcost.features import featurize_records
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params

SPLITS = ("within_task", "by_task", "by_network", "by_family")
TRANSFORMS = ("identity", "sqrt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--slots", default=",".join(CPU_SLOTS))
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    slots, splits = a.slots.split(","), a.splits.split(",")
    raw = dataset.bundled_tables(slots)
    results: dict = {}
    for s in tqdm(slots, desc="platforms", unit="platform"):
        table = featurize_records(raw[s], catalog_target(s).features(), HARDWARE_FEATURE_NAMES, slot=s)
        for sp in splits:
            mask = split_mask(sp, table, split_params)
            if mask.all() or not mask.any():
                continue
            test = table.take(np.flatnonzero(mask))
            for tf in TRANSFORMS:
                model, _ = fit(ModelSpec(base.family, {**base.params, "label_transform": tf}), table.take(np.flatnonzero(~mask)))
                te = test.frame
                r = ranking_report(te["task_id"], predict(model, test), te["latency_s"].to_numpy(), network_weights(te)).to_dict()
                results.setdefault(sp, {}).setdefault(tf, {})[s] = {k: round(float(r[k]), 4) for k in ("pca", "top1", "top5", "n_tasks")}
    out = {"preset": a.preset, "params": base.params, "slots": slots, "results": results, "seconds": round(time.time() - t0, 1),
           "command": "python benchmarks/label_transform.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"\n{a.preset}: PCA / top-1 / top-5, mean over {len(slots)} platforms; PCA change per platform ({', '.join(s.split('.')[0] for s in slots)})\n")
    print("| split | " + " | ".join(TRANSFORMS) + " | PCA change per platform |")
    print("| --- |" + " --- |" * (len(TRANSFORMS) + 1))
    for sp, by_tf in results.items():
        cells = [" / ".join(f"{x:.3f}" for x in np.mean([[r[k] for k in ("pca", "top1", "top5")] for r in by_tf[tf].values()], axis=0)) for tf in TRANSFORMS]
        delta = " ".join(f"{by_tf['sqrt'][s]['pca'] - by_tf['identity'][s]['pca']:+.3f}" for s in slots if s in by_tf["sqrt"])
        print(f"| {sp} | " + " | ".join(cells) + f" | {delta} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
