"""In-search scoring speed (issue 15): candidates scored per second *end to end* (a MetaSchedule
candidate in, a score out: trace featurization included) by the tensorcost adapter and by TVM's
own XGBoost (its PerStoreFeature extraction included), side by side on the same candidates.

    .venv/bin/python benchmarks/search_speed.py --out reports/analysis/search_speed.json

Candidates are real schedules: the bundled traces of the largest tasks, re-applied. Both models
are first trained on the same measured candidates (`update`), then each scores every candidate
`--repeats` times; the report gives the median throughput and the spread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import tvm.s_tir.meta_schedule as ms

    from tensorcost import dataset
    from tensorcost.collect import read_tasks
    from tensorcost.evaluation import ModelSpec
    from tensorcost.features import FeatureTable, featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES, catalog_target
    from tensorcost.tuning import make_registry_cost_model
    from tensorcost.tvm_support import apply_trace_json, register_x86_intrinsics_only, tvm_target

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="zen5-2c.avx2-t1")
    ap.add_argument("--tasks", type=int, default=3)
    ap.add_argument("--models", default="lightgbm_rank,attention")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="reports/analysis/search_speed.json")
    args = ap.parse_args()

    from tensorcost.params import load_params

    p = load_params()
    register_x86_intrinsics_only()
    hw = catalog_target(args.target)
    table = dataset.bundled_tables([args.target])[args.target]
    frame = featurize_table(table, hw.features(), HARDWARE_FEATURE_NAMES, slot=args.target)
    data = FeatureTable(frame, args.target)
    tasks, _ = read_tasks(dataset.programs_dir("cpu"))
    by_id = {t.task_id: t for t in tasks}
    sizes = frame.groupby("task_id").size().sort_values(ascending=False)
    report = {"target": args.target, "repeats": args.repeats, "tasks": []}
    adapters = {}
    for key in args.models.split(","):
        model = ModelSpec.preset(p, key).create(data)
        model.fit(data)
        adapters[key] = make_registry_cost_model(model, hw)
    rows = table.to_pylist()
    for task_id in list(sizes.index[: args.tasks]):
        task = by_id[task_id]
        recs = [r for r in rows if r["task_id"] == task_id and r["error_no"] == 0]
        cands, results = [], []
        for r in recs:
            sch = apply_trace_json(task.mod, r["trace"])
            cands.append(ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
            results.append(ms.runner.RunnerResult(run_secs=[float(x) for x in r["latencies"]], error_msg=None))
        ctx = ms.TuneContext(task.mod, target=tvm_target(hw), task_name=task.task_name, num_threads=2)
        xgb = ms.cost_model.XGBModel(num_warmup_samples=0)
        xgb.update(ctx, cands, results)  # TVM's XGBoost trained on the task's measured candidates
        entry = {"task": task.task_name, "candidates": len(cands), "candidates_per_s": {}}
        for name, scorer in {"tvm_xgb": xgb, **adapters}.items():
            scorer.predict(ctx, cands)  # warm (workload features, lazy imports)
            rates = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                scorer.predict(ctx, cands)
                rates.append(len(cands) / (time.perf_counter() - t0))
            entry["candidates_per_s"][name] = {"median": float(np.median(rates)), "min": float(min(rates)), "max": float(max(rates))}
        report["tasks"].append(entry)
        print(entry["task"], len(cands), {k: round(v["median"]) for k, v in entry["candidates_per_s"].items()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
