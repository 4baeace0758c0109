"""The tiles loop by loop (tc-feat-4, issue 27 item 2): what `LOOP_FEATURE_NAMES` add to the
tree models on every split the platforms' own data is scored on, each bundled CPU platform in
turn, scored exactly as the split study scores (network-weighted PCA / top-1 / top-5).

    .venv/bin/python benchmarks/loop_features.py --out docs/results/loop_features.json

`without` drops the loop columns from the same feature table (what tc-feat-3 gave the models: the
other columns are unchanged), `with` keeps them; same rows, same split, same preset.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, fit, network_weights, predict, run_study, split_mask
from tensorcost.features import FeatureTable, featurize_records
from tensorcost.features.program import LOOP_FEATURE_NAMES
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params

CPU_SLOTS = ("sapphirerapids-2c-0ceb.avx2-t1", "sapphirerapids-2c.avx2-t1", "zen3-2c.avx2-t1", "zen4-2c.avx2-t1", "zen5-2c.avx2-t1")
SPLITS = ("within_task", "by_task", "by_network", "by_family", "by_hardware")


def without_loop_columns(t: FeatureTable) -> FeatureTable:
    keep = [i for i, n in enumerate(t.feature_names) if n not in set(LOOP_FEATURE_NAMES)]
    return FeatureTable(t.frame, t.slot, t.ms_features, flat=t.flat[:, keep], token_offsets=t.token_offsets, token_rows=t.token_rows,
                        feature_names=[t.feature_names[i] for i in keep], feature_schema=t.feature_schema)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="lightgbm_reg,lightgbm_rank")
    ap.add_argument("--slots", default=",".join(CPU_SLOTS))
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    presets, slots, splits = a.presets.split(","), a.slots.split(","), a.splits.split(",")
    specs = {name: ModelSpec.preset(p, name) for name in presets}
    raw = dataset.bundled_tables(slots)
    full = {s: featurize_records(raw[s], catalog_target(s).features(), HARDWARE_FEATURE_NAMES, slot=s) for s in slots}
    tables = {"with": full, "without": {s: without_loop_columns(t) for s, t in full.items()}}
    results: dict = {}
    own = [sp for sp in splits if sp != "by_hardware"]
    jobs = [(s, sp, name) for s in slots for sp in own for name in presets]
    for s, sp, name in tqdm(jobs, desc="slot x split x preset", unit="fit pair"):
        mask = split_mask(sp, full[s], split_params)
        if mask.all() or not mask.any():
            continue
        for variant in ("without", "with"):
            tab = tables[variant][s]
            model, _ = fit(specs[name], tab.take(np.flatnonzero(~mask)))
            te = tab.take(np.flatnonzero(mask))
            r = ranking_report(te.frame["task_id"], predict(model, te), te.frame["latency_s"].to_numpy(), network_weights(te.frame)).to_dict()
            results.setdefault(name, {}).setdefault(sp, {}).setdefault(variant, {})[s] = {k: round(float(r[k]), 4) for k in ("pca", "top1", "top5", "n_tasks")}
    if "by_hardware" in splits:  # each platform held out whole, trained on the others (the split study's code)
        for variant in ("without", "with"):
            metrics, _, _ = run_study(tables[variant], ["by_hardware"], specs, split_params, progress=None)
            for s in metrics:
                for name in presets:
                    r = metrics[s].get("by_hardware", {}).get(name)
                    if r:
                        results.setdefault(name, {}).setdefault("by_hardware", {}).setdefault(variant, {})[s] = {
                            k: round(float(r[k]), 4) for k in ("pca", "top1", "top5", "n_tasks")}
    out = {"presets": {n: specs[n].params for n in presets}, "slots": slots, "loop_features": len(LOOP_FEATURE_NAMES), "results": results,
           "seconds": round(time.time() - t0, 1), "command": "python benchmarks/loop_features.py " + " ".join(
               f"--{k} {v}" for k, v in vars(a).items())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    for name in presets:
        print(f"\n{name}: PCA / top-1 / top-5, mean over {len(slots)} platforms (PCA per platform: {', '.join(s.split('.')[0] for s in slots)})\n")
        print("| split | without the loop columns | with them | PCA change per platform |")
        print("| --- | --- | --- | --- |")
        for sp in splits:
            r = results.get(name, {}).get(sp)
            if not r:
                continue
            m = {v: np.array([[r[v][s][k] for k in ("pca", "top1", "top5")] for s in slots if s in r[v]]) for v in ("without", "with")}
            delta = " ".join(f"{r['with'][s]['pca'] - r['without'][s]['pca']:+.3f}" for s in slots if s in r["with"])
            print(f"| {sp} | " + " | ".join(" / ".join(f"{x:.3f}" for x in m[v].mean(axis=0)) for v in ("without", "with")) + f" | {delta} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
