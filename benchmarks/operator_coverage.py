"""Does by_family fail for want of operators or for want of a better model? (issue 27 item 2)

by_family holds out every architecture family that carries matrix products (transformers, RNNs,
Swin, ...), so on the bundled program sets its training side is 30 convolution tasks and its test
side mostly `matmul`. This adds tasks of the families by_family *trains* on (the third
bundled CPU program set, kept out of the base here), measured on this machine (`tensorcost dataset sample` + `collect` with the params
in the record directory's SOURCE.md), to the training side, and scores the same held-out tasks:

    .venv/bin/python benchmarks/operator_coverage.py --slot sapphirerapids-2c.avx2-t1 \
        --extra docs/results/operator_coverage/records.parquet --out docs/results/operator_coverage.json

Training sides compared: the bundled training side; plus the extra tasks of other op kinds than
conv2d; plus the extra conv2d tasks only; plus all extra tasks. The test side is the bundled
by_family test side in every row. LightGBM is deterministic (no bagging), so instead of seeds each
row says on how many held-out tasks its PCA is above / below the bundled side's (a paired count).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.evaluation import ModelSpec, fit, network_weights, predict, split_mask
from tensorcost.features import FeatureTable, featurize_records
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params

CONV = ("conv2d",)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", required=True, help="a bundled target measured on the machine the extra records come from")
    ap.add_argument("--extra", required=True, type=Path, help="records file of the extra tasks (canonical records)")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    features = catalog_target(a.slot).features()
    extra_raw = dataset.relabel(rec.read_records(a.extra), a.slot)
    # the bundled set may hold the extra tasks already (they were merged into it): the base is the rest
    bundled = dataset.bundled_tables([a.slot])[a.slot]
    bundled = bundled.filter(pc.invert(pc.is_in(bundled["task_id"], value_set=pa.array(sorted(set(extra_raw.column("task_id").to_pylist()))))))
    table = featurize_records(bundled, features, HARDWARE_FEATURE_NAMES, slot=a.slot)
    extra = featurize_records(extra_raw, features, HARDWARE_FEATURE_NAMES, slot=a.slot)
    test_mask = split_mask("by_family", table, split_params)
    if split_mask("by_family", extra, split_params).any():
        raise SystemExit(f"{a.extra}: some extra tasks belong to a family by_family holds out; they must be training-side tasks")
    train, test = table.take(np.flatnonzero(~test_mask)), table.take(np.flatnonzero(test_mask))
    op_of = dict(zip(extra_raw.column("task_id").to_pylist(), extra_raw.column("op_kind").to_pylist()))
    is_conv = np.array([op_of[t] in CONV for t in extra.frame["task_id"]])
    sides = {
        "program sets 1-2 (training side)": train,
        "+ set 3, other op kinds than conv2d": FeatureTable.concat([train, extra.take(np.flatnonzero(~is_conv))], a.slot),
        "+ set 3, conv2d only": FeatureTable.concat([train, extra.take(np.flatnonzero(is_conv))], a.slot),
        "+ all of set 3": FeatureTable.concat([train, extra], a.slot),
    }
    te = test.frame
    tasks = te["task_id"].astype(str).to_numpy()
    results: dict = {}
    for name, side in sides.items():
        model, _ = fit(base, side)
        scores = predict(model, test)
        r = ranking_report(te["task_id"], scores, te["latency_s"].to_numpy(), network_weights(te))
        per_task = {t: ranking_report(tasks[tasks == t], scores[tasks == t], te["latency_s"].to_numpy()[tasks == t]).pca for t in np.unique(tasks)}
        results[name] = {"train_tasks": int(side.frame["task_id"].nunique()), "train_rows": len(side), "pca": r.pca, "top1": r.top1, "top5": r.top5,
                         "per_task_pca": per_task}
        first = results[next(iter(sides))]["per_task_pca"]
        diffs = np.array([per_task[t] - first[t] for t in per_task if np.isfinite(per_task[t]) and np.isfinite(first[t])])
        results[name]["tasks_above_below_bundled"] = [int((diffs > 0).sum()), int((diffs < 0).sum())]
        print(f"{name}: {results[name]['train_tasks']} tasks, PCA {r.pca:.3f} top-1 {r.top1:.3f} top-5 {r.top5:.3f}, "
              f"tasks above/below the bundled side {results[name]['tasks_above_below_bundled']}", flush=True)
    ops = {k: int(v) for k, v in zip(*np.unique(np.array(list(op_of.values())), return_counts=True))}
    test_ops = sorted(set(pc.unique(bundled.filter(pa.array(np.isin(bundled.column("task_id").to_numpy(zero_copy_only=False), te["task_id"].unique())))
                                           .column("op_kind")).to_pylist()))
    out = {"slot": a.slot, "preset": a.preset, "extra": str(a.extra), "extra_tasks_by_op": ops, "test_tasks": int(te["task_id"].nunique()),
           "test_op_kinds": test_ops, "results": results, "seconds": round(time.time() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(f"\nby_family on `{a.slot}` ({out['test_tasks']} held-out tasks: {', '.join(test_ops)}), {a.preset}\n")
    print("| training side | tasks | rows | PCA | top-1 | top-5 | held-out tasks above / below the bundled side (PCA) |\n| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        up, down = r["tasks_above_below_bundled"]
        print(f"| {name} | {r['train_tasks']} | {r['train_rows']} | {r['pca']:.3f} | {r['top1']:.3f} | {r['top5']:.3f} | {up} / {down} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
