"""More programs per task, measured (issue 27 item 2): does within-task ranking keep improving
past the bundled program set's 104 programs a task?

`benchmarks/programs_per_task.py` subsamples the bundled programs (8 ... 104 a task). This one
goes past them: for TASKS tasks of the bundled CPU program set it samples EXTRA new random
programs a task (a seed the bundled set did not use), measures them on this machine's target
(resumable in WORK), pools them with this platform's bundled records of the same tasks, and draws
a learning curve of PCA / top-1 / top-5 over programs a task on one fixed test side (30% of every
task's programs, by a hash of the program id), several seeds a point: one curve per model preset
(`--models`) and feature set (`--features`: `tc-feat-4` all of them, `tc-feat-3` the loop columns
dropped). Curves of two feature sets that run parallel say the features, not the data, set the
level; curves that meet say more data makes up for the features.

    .venv/bin/python benchmarks/more_programs.py --target sapphirerapids-2c-0ceb.avx2-t1 \
        --tasks 16 --extra 200 --work .tensorcost/more-programs --out docs/results/more_programs-<platform>.json

Needs this machine to be the target's platform (it measures); the bundled records of the
platform must exist (`tensorcost platform add`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from tensorcost import collect, dataset, hardware
from tensorcost import records as rec
from tensorcost.evaluation import ModelSpec, fit, score
from common import without_features
from tensorcost.features import FeatureTable, featurize_records
from tensorcost.features.program import LOOP_FEATURE_NAMES
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.params import MeasureConfig, load_params
from tensorcost.plots import programs_per_task_curves
from tensorcost.tvm_support import tvm_target

TEST_SHARE = 0.3
FEATURE_SETS = {"tc-feat-4": (), "tc-feat-3": LOOP_FEATURE_NAMES}  # name -> the columns dropped


def _test_side(program_ids) -> np.ndarray:
    """A fixed ~30% of every task's programs: by a hash of the program id (no seed moves it)."""
    return np.array([int(hashlib.md5(p.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < TEST_SHARE for p in program_ids])


def choose_tasks(tasks, bundled: pa.Table, n: int) -> list:
    """`n` tasks with the most valid bundled records, one op kind after another (conv, dense, ...)."""
    valid = bundled.filter(pc.equal(bundled["error_no"], 0))
    counts = dict(zip(*np.unique(valid.column("task_id").to_numpy(zero_copy_only=False), return_counts=True)))
    by_kind: dict[str, list] = {}
    for t in sorted(tasks, key=lambda t: (-counts.get(t.task_id, 0), t.task_id)):
        if counts.get(t.task_id, 0) >= 60:
            by_kind.setdefault(t.op_kind, []).append(t)
    chosen: list = []
    while len(chosen) < n and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(chosen) < n:
                chosen.append(by_kind[kind].pop(0))
    return chosen


def measure_extra(tasks, bundled_programs: dict, hw, extra: int, seed: int, work: Path) -> pa.Table:
    """New random programs (not in the bundled set) of each task, measured on `hw` into `work`."""
    target = tvm_target(hw)
    programs = {}
    for t in tqdm(tasks, desc="sample", unit="task"):
        have = {rec.program_id(tr) for tr in bundled_programs.get(t.task_id, [])}
        fresh = [tr for tr in collect.sample_programs(t, target, extra + len(have), seed) if rec.program_id(tr) not in have]
        programs[t.task_id] = fresh[:extra]
    collect.collect_target(tasks, programs, hw, work, MeasureConfig())
    return rec.read_records(collect.parts_dir(work))


def curve(table: FeatureTable, pool: np.ndarray, spec: ModelSpec, sizes: list[int], seeds: int) -> dict:
    """PCA / top-1 / top-5 on the fixed test side (of the whole table) of models trained on n
    programs of every task drawn from the rows `pool` allows (median of `seeds` draws)."""
    frame = table.frame
    test_mask = _test_side(frame["program_id"].astype(str))
    test = table.take(np.flatnonzero(test_mask))
    train_rows = np.flatnonzero(~test_mask & pool)
    tasks = frame["task_id"].to_numpy()[train_rows]
    out = {}
    for n in sizes:
        runs = []
        for s in range(seeds):
            rng = np.random.default_rng(s)
            keep = []
            for t in np.unique(tasks):
                rows = train_rows[tasks == t]
                keep.append(rows if len(rows) <= n else rng.choice(rows, n, replace=False))
            train = table.take(np.sort(np.concatenate(keep)))
            model, _ = fit(spec, train)
            runs.append(score(model, test))
        out[str(n)] = {"pca": float(np.median([r["pca"] for r in runs])), "top1": float(np.median([r["top1"] for r in runs])),
                       "top5": float(np.median([r["top5"] for r in runs])), "pca_runs": [r["pca"] for r in runs],
                       "train_programs_per_task": int(min(n, np.bincount(np.unique(tasks, return_inverse=True)[1]).max()))}
    return {"test_records": len(test), "points": out}


def plot(result: dict, out: Path) -> None:
    programs_per_task_curves(result["curves"], f"{result['target']}: {len(result['tasks'])} tasks, fixed test side", out)
    print(f"plot: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--extra", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1001, help="program sampling seed (the bundled set used others)")
    ap.add_argument("--seeds", type=int, default=3, help="draws of the training programs per point")
    ap.add_argument("--models", default="lightgbm_reg", help="comma-separated presets of params.yaml's models")
    ap.add_argument("--features", default="tc-feat-4", help=f"comma-separated, of: {', '.join(FEATURE_SETS)}")
    ap.add_argument("--work", type=Path, default=Path(".tensorcost/more-programs"))
    ap.add_argument("--out", type=Path, required=True, help="the JSON; its plot is written beside it (.png)")
    ap.add_argument("--replot", action="store_true", help="only draw --out's plot again from --out")
    a = ap.parse_args()
    if a.replot:
        return plot(json.loads(a.out.read_text()), a.out.with_suffix(".png"))
    feature_sets = a.features.split(",")
    if unknown := [f for f in feature_sets if f not in FEATURE_SETS]:
        ap.error(f"unknown feature set {unknown[0]!r}; known: {', '.join(FEATURE_SETS)}")
    p = load_params()
    specs = {m: ModelSpec.preset(p, m) for m in a.models.split(",")}  # a typo fails here, before any measuring
    t0 = time.time()
    hw = hardware.resolve_target(a.target)
    tasks, programs, _ = collect.load_task_set(dataset.programs_dir("cpu"))
    bundled = rec.read_records(dataset.bundled_records_path(a.target))
    chosen = choose_tasks(tasks, bundled, a.tasks)
    ids = pa.array([t.task_id for t in chosen])
    bundled = bundled.filter(pc.is_in(bundled["task_id"], value_set=ids))
    extra = measure_extra(chosen, programs, hw, a.extra, a.seed, a.work / a.target)
    measured_s = time.time() - t0
    pooled = pa.concat_tables([bundled.select(rec.COLUMNS).cast(rec.RECORDS_SCHEMA), extra.select(rec.COLUMNS).cast(rec.RECORDS_SCHEMA)])
    table = featurize_records(pooled, hw.features(), HARDWARE_FEATURE_NAMES, slot=a.target)
    frame = table.frame
    is_bundled = frame["record_id"].isin(set(bundled.column("record_id").to_pylist())).to_numpy()
    per_task = np.bincount(np.unique(frame["task_id"], return_inverse=True)[1])
    sizes = [s for s in (13, 26, 52, 104, 208, 416) if s <= int(per_task.max() * (1 - TEST_SHARE)) + 13]
    curves = {}
    for fs in tqdm(feature_sets, desc="feature sets", unit="set"):
        t = without_features(table, FEATURE_SETS[fs]) if FEATURE_SETS[fs] else table
        for m, spec in specs.items():
            curves[f"{m} / {fs}"] = {"pooled": curve(t, np.ones(len(t), bool), spec, sizes, a.seeds),
                                     "bundled_only": curve(t, is_bundled, spec, [s for s in sizes if s <= 104], a.seeds)}  # same test side
    result = {
        "target": a.target, "models": list(specs), "features": feature_sets, "tasks": [t.task_name for t in chosen], "extra_per_task": a.extra, "sampling_seed": a.seed,
        "valid_records": len(table), "bundled_valid_records": int(is_bundled.sum()), "programs_per_task": {"min": int(per_task.min()), "median": float(np.median(per_task)), "max": int(per_task.max())},
        "curves": curves,
        "measure_seconds": round(measured_s, 1), "seconds": round(time.time() - t0, 1),
        "command": "python benchmarks/more_programs.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    plot(result, a.out.with_suffix(".png"))
    names = list(curves)
    print("| programs a task (train) | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for n in sizes:
        print(f"| {n} | " + " | ".join(" / ".join(f"{curves[c]['pooled']['points'][str(n)][k]:.3f}" for k in ("pca", "top1", "top5")) for c in names) + " |")


if __name__ == "__main__":
    main()
