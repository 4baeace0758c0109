"""Does by_family fail for want of operators or for want of a better model? (issue 27 item 2)

by_family holds out every architecture family that carries matrix products (transformers, RNNs,
Swin, ...), so on the bundled program sets its training side is 30 convolution tasks and its test
side mostly `matmul`. This adds tasks of the families by_family *trains* on (the third bundled
CPU program set, `tensorcost dataset sample` + `collect` with docs/dataset-params-zoo3.yaml; kept
out of the base here) to the training side and scores the same held-out tasks:

    .venv/bin/python benchmarks/operator_coverage.py --slot sapphirerapids-2c.avx2-t1 --out docs/results/operator_coverage.json

Training sides compared: program sets 1-2's training side; plus set 3's tasks of other op kinds
than conv2d; plus its conv2d tasks only; plus all of it. The test side is the by_family test side
of sets 1-2 in every row. LightGBM is deterministic (no bagging), so instead of seeds each row
says on how many held-out tasks its PCA is above / below the first row's (a paired count).
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
from tensorcost.evaluation import ModelSpec, fit, network_weights, predict, split_mask
from tensorcost.features import FeatureTable, featurize_records
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params

CONV = ("conv2d",)


def program_set_tasks(index: int) -> list[str]:
    """Task ids of the bundled CPU program set `index` (1: the first; later ones were appended by
    `dataset pack --merge`, which records each one's task count in tasks.json's meta)."""
    doc = json.loads((dataset.programs_dir("cpu") / "tasks.json").read_text())
    merged = [m["tasks"] for m in doc["meta"].get("merged", [])]
    sizes = [len(doc["tasks"]) - sum(merged)] + merged
    if not 1 <= index <= len(sizes):
        raise SystemExit(f"--program-set {index}: the bundled CPU program sets are 1-{len(sizes)}")
    start = sum(sizes[:index - 1])
    return [t["task_id"] for t in doc["tasks"][start:start + sizes[index - 1]]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", required=True, help="a bundled target that measured the program set")
    ap.add_argument("--program-set", type=int, default=3, help="the bundled CPU program set whose tasks are the extra ones (1: the first)")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    features = catalog_target(a.slot).features()
    raw = dataset.bundled_tables([a.slot])[a.slot]
    in_set = pc.is_in(raw["task_id"], value_set=pa.array(program_set_tasks(a.program_set)))
    extra_raw, bundled = raw.filter(in_set), raw.filter(pc.invert(in_set))  # the base: the other sets
    if extra_raw.num_rows == 0:
        raise SystemExit(f"{a.slot} has no records of program set {a.program_set}")
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
              f"tasks above/below sets 1-2 {results[name]['tasks_above_below_bundled']}", flush=True)
    ops = {k: int(v) for k, v in zip(*np.unique(np.array(list(op_of.values())), return_counts=True))}
    test_ops = sorted(set(pc.unique(bundled.filter(pa.array(np.isin(bundled.column("task_id").to_numpy(zero_copy_only=False), te["task_id"].unique())))
                                           .column("op_kind")).to_pylist()))
    out = {"slot": a.slot, "preset": a.preset, "program_set": a.program_set, "extra_tasks_by_op": ops, "test_tasks": int(te["task_id"].nunique()),
           "test_op_kinds": test_ops, "results": results, "seconds": round(time.time() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(f"\nby_family on `{a.slot}` ({out['test_tasks']} held-out tasks: {', '.join(test_ops)}), {a.preset}\n")
    print("| training side | tasks | rows | PCA | top-1 | top-5 | held-out tasks above / below sets 1-2 (PCA) |\n| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        up, down = r["tasks_above_below_bundled"]
        print(f"| {name} | {r['train_tasks']} | {r['train_rows']} | {r['pca']:.3f} | {r['top1']:.3f} | {r['top5']:.3f} | {up} / {down} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
