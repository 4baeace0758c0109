"""Does by_family fail for want of operators or for want of a better model? (issue 27 item 2)

by_family holds out every architecture family that carries matrix products (transformers, RNNs,
Swin, ...), so on the bundled program sets its training side is 30 convolution tasks and its test
side mostly `matmul`. This adds tasks of the families by_family *trains* on (the third bundled
CPU program set, docs/dataset-params-zoo3.yaml: other op kinds first; the fourth,
docs/dataset-params-zoo4.yaml: those families' remaining matrix products; `tensorcost dataset
sample` + `collect`; kept out of the base here) to the training side and scores the same held-out
tasks:

    .venv/bin/python benchmarks/operator_coverage.py --slot zen3-2c.avx2-t1 --program-sets 3,4 --out docs/results/operator_coverage-zen3.json

Training sides compared: the other program sets' training side; plus each extra set's tasks of
other op kinds than conv2d, its conv2d tasks only, all of it; plus all extra sets. A set the slot
has not measured is left out. The test side is the by_family test side of the base sets in every
row. LightGBM is deterministic (no bagging), so instead of seeds each row says on how many
held-out tasks its PCA is above / below the first row's (a paired count).
"""

from __future__ import annotations

import argparse
import functools
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


@functools.cache
def program_sets_sizes() -> tuple[list[dict], list[int]]:
    """The bundled CPU task list and its program sets' task counts, in order (the first set, then
    those `dataset pack --merge` appended, each with its count in tasks.json's meta)."""
    doc = json.loads((dataset.programs_dir("cpu") / "tasks.json").read_text())
    merged = [m["tasks"] for m in doc["meta"].get("merged", [])]
    return doc["tasks"], [len(doc["tasks"]) - sum(merged)] + merged


def program_set_tasks(index: int) -> list[str]:
    """Task ids of the bundled CPU program set `index` (1: the first)."""
    tasks, sizes = program_sets_sizes()
    if not 1 <= index <= len(sizes):
        raise SystemExit(f"--program-set {index}: the bundled CPU program sets are 1-{len(sizes)}")
    start = sum(sizes[:index - 1])
    return [t["task_id"] for t in tasks[start:start + sizes[index - 1]]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", required=True, help="a bundled target that measured the program set")
    ap.add_argument("--program-sets", default="3", help="the bundled CPU program sets whose tasks are the extra ones, comma-separated (1: the first)")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    base = ModelSpec.preset(p, a.preset)
    features = catalog_target(a.slot).features()
    raw = dataset.bundled_tables([a.slot])[a.slot]
    sets = [int(x) for x in a.program_sets.split(",")]
    set_of = {t: n for n in sets for t in program_set_tasks(n)}
    in_sets = pc.is_in(raw["task_id"], value_set=pa.array(list(set_of)))
    extra_raw, bundled = raw.filter(in_sets), raw.filter(pc.invert(in_sets))  # the base: the other sets
    if extra_raw.num_rows == 0:
        raise SystemExit(f"{a.slot} has no records of program sets {a.program_sets}")
    base_name = "sets " + ", ".join(str(n) for n in sorted(set(range(1, len(program_sets_sizes()[1]) + 1)) - set(sets)))
    table = featurize_records(bundled, features, HARDWARE_FEATURE_NAMES, slot=a.slot)
    extra = featurize_records(extra_raw, features, HARDWARE_FEATURE_NAMES, slot=a.slot)
    test_mask = split_mask("by_family", table, split_params)
    if split_mask("by_family", extra, split_params).any():
        raise SystemExit(f"program sets {a.program_sets}: some of their tasks belong to a family by_family holds out; they must be training-side tasks")
    train, test = table.take(np.flatnonzero(~test_mask)), table.take(np.flatnonzero(test_mask))
    op_of = dict(zip(extra_raw.column("task_id").to_pylist(), extra_raw.column("op_kind").to_pylist()))
    task_col = extra.frame["task_id"].to_numpy()
    is_conv = np.array([op_of[t] in CONV for t in task_col])
    set_col = np.array([set_of[t] for t in task_col])
    sides = {f"program {base_name} (training side)": train}
    measured = [n for n in sets if (set_col == n).any()]  # a platform may lack a set
    for n in measured:
        rows = set_col == n
        if (rows & is_conv).any() and (rows & ~is_conv).any():
            sides[f"+ set {n}, other op kinds than conv2d"] = FeatureTable.concat([train, extra.take(np.flatnonzero(rows & ~is_conv))], a.slot)
            sides[f"+ set {n}, conv2d only"] = FeatureTable.concat([train, extra.take(np.flatnonzero(rows & is_conv))], a.slot)
        sides[f"+ all of set {n}"] = FeatureTable.concat([train, extra.take(np.flatnonzero(rows))], a.slot)
    if len(measured) > 1:
        sides["+ sets " + ", ".join(map(str, measured))] = FeatureTable.concat([train, extra], a.slot)
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
              f"tasks above/below the first row {results[name]['tasks_above_below_bundled']}", flush=True)
    ops = {k: int(v) for k, v in zip(*np.unique(np.array(list(op_of.values())), return_counts=True))}
    test_ops = sorted(set(pc.unique(bundled.filter(pa.array(np.isin(bundled.column("task_id").to_numpy(zero_copy_only=False), te["task_id"].unique())))
                                           .column("op_kind")).to_pylist()))
    out = {"slot": a.slot, "preset": a.preset, "program_sets": measured, "extra_tasks_by_op": ops, "test_tasks": int(te["task_id"].nunique()),
           "test_op_kinds": test_ops, "results": results, "seconds": round(time.time() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(f"\nby_family on `{a.slot}` ({out['test_tasks']} held-out tasks: {', '.join(test_ops)}), {a.preset}\n")
    print("| training side | tasks | rows | PCA | top-1 | top-5 | held-out tasks above / below the first row (PCA) |\n| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        up, down = r["tasks_above_below_bundled"]
        print(f"| {name} | {r['train_tasks']} | {r['train_rows']} | {r['pca']:.3f} | {r['top1']:.3f} | {r['top5']:.3f} | {up} / {down} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
