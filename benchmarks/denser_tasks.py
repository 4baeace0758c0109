"""Denser tasks in the dataset (issue 27 item 2): within_task on a platform whose tasks
`sample.extend` grew (docs/dataset-params-dense1.yaml, measured whole by `tensorcost dataset
collect`, packed by `dataset pack --merge`), trained on the programs each task held before against
all of them, scored on the same within_task test side as the split study.

    .venv/bin/python benchmarks/denser_tasks.py --slot zen3-2c.avx2-t1 --pooled --out docs/results/denser_tasks-zen3-2c.json
    .venv/bin/python benchmarks/denser_tasks.py --out docs/results/denser_tasks-zen3-2c.json --replot   # its plot (.png beside it)

Which programs a grown task held before: the ones its earlier records (the platform's
`superseded-<variant>.parquet`) measured. Three test sides: the whole within_task test side (the
split table's cell), the grown tasks' part of it, and the grown tasks' earlier programs only (the
test programs a model trained before the growth was scored on). Training sides: `earlier` (every
task's earlier programs: what the dataset held before), `all`; and a curve over programs a grown
task on its training side (other tasks whole), medians of `--seeds` draws. `--pooled` adds the
best pooled variant of the split-levers study (the other CPU platforms' training sides, 63
leaves, sqrt labels), trained on `earlier` and `all`. `--min-programs N`: only the tasks
a later growth took to N programs or more count as grown. `--other-splits`: the same two training
sides of other splits (by_family: unseen networks' families), no curve; `by_hardware` among them
(with --pooled) trains on the other platforms and scores the slot's earlier programs (measured on
the training platforms too) apart from its new ones (measured nowhere else).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common import CPU_SLOTS, bundled_feature_tables, command_line, rounded, split_sides, write_json
from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.evaluation import ModelSpec, fit, joint_training_side, other_platforms, pool, score
from tensorcost.params import load_params
from tensorcost.plots import programs_per_task_curves

POOLED_BEST = {"num_leaves": 63, "min_data_in_leaf": 20, "label_transform": "sqrt"}  # split_levers.py "pooled 63 leaves sqrt"


def earlier_programs(slot: str) -> set[tuple[str, str]]:
    """(task, program) pairs the platform measured before its tasks grew (its superseded records)."""
    path = dataset.superseded_records_path(slot)
    if not path.exists():
        raise SystemExit(f"{path}: no superseded records, so no task of {slot} grew (docs/DATASET.md, 'Denser tasks')")
    return dataset.program_keys(rec.read_records(path))


def plot(result: dict, out: Path) -> None:
    """The curve (PCA, top-1, top-5 against training programs a grown task), the whole side at
    its median programs a grown task."""
    whole = str(int(result["train_programs_per_grown_task"]["median"]))
    curves = {f"{result['preset']}, {side}": {"pooled": {"points": {(whole if n == "all" else n): c[side] for n, c in result["curve"].items()}}}
              for side in ("within_task", "grown tasks")}
    programs_per_task_curves(curves, f"{result['slot']}: {result['grown_tasks']} of {result['tasks']} tasks grown; within_task test side", out, dashed=None)
    print(f"plot: {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--sizes", default="26,52,104,156", help="programs a grown task on the training side (the curve); its whole side is added")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pooled", action="store_true", help="also the pooled 63-leaves sqrt variant (featurizes the other CPU platforms)")
    ap.add_argument("--other-splits", default="by_family,by_network,by_task",
                    help="splits also scored trained on `earlier` and `all` (no curve); '' for none")
    ap.add_argument("--min-programs", type=int, default=0,
                    help="grown tasks: only those now holding at least this many programs (the last growth's: a task grown "
                         "twice has its records of both earlier windows superseded, so `earlier` is what it held before the last)")
    ap.add_argument("--replot", action="store_true", help="only draw --out's plot again from --out")
    a = ap.parse_args()
    if a.replot:
        return plot(json.loads(Path(a.out).read_text()), Path(a.out).with_suffix(".png")) or 0
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    spec = ModelSpec.preset(p, a.preset)
    before = earlier_programs(a.slot)
    tables = bundled_feature_tables([a.slot] + ([s for s in CPU_SLOTS if s != a.slot] if a.pooled else []))
    table = tables[a.slot]
    held = table.frame["task_id"].astype(str).value_counts()  # one row a program in a slot (validate refuses duplicates)
    grown = {t for t, _ in before if held.get(t, 0) >= a.min_programs}
    if not grown:
        raise SystemExit(f"no grown task of {a.slot} holds {a.min_programs} programs or more")
    train, test = split_sides(table, "within_task", split_params)

    def rows(side, grown_only: bool, earlier_only: bool) -> np.ndarray:
        f = side.frame
        keys = list(zip(f["task_id"].astype(str), f["program_id"].astype(str)))
        in_grown = np.array([k[0] in grown for k in keys])
        was_there = np.array([(k[0] not in grown) or (k in before) for k in keys])
        return np.flatnonzero((in_grown if grown_only else True) & (was_there if earlier_only else True))

    tests = {"within_task": test, "grown tasks": test.take(rows(test, True, False)), "grown tasks, earlier programs": test.take(rows(test, True, True))}
    trains = {"earlier": train.take(rows(train, False, True)), "all": train}
    per_task = train.frame.groupby("task_id").size()
    result: dict = {"slot": a.slot, "preset": a.preset, "grown_tasks": len(grown), "min_programs": a.min_programs, "tasks": int(table.frame["task_id"].nunique()),
                    "train_rows": {k: len(v) for k, v in trains.items()}, "test_rows": {k: len(v) for k, v in tests.items()},
                    "train_programs_per_grown_task": {"median": float(per_task[per_task.index.isin(grown)].median()),
                                                      "earlier_median": float(trains["earlier"].frame.groupby("task_id").size()[lambda s: s.index.isin(grown)].median())},
                    "figures": {}, "curve": {}}
    variants = {a.preset: (spec, False)}
    if a.pooled:
        variants[f"{a.preset} pooled 63 leaves sqrt"] = (ModelSpec(spec.family, {**spec.params, **POOLED_BEST}), True)
    for name, (vspec, pooled) in variants.items():
        for tname, tr in trains.items():
            side = joint_training_side(tables, a.slot, "within_task", split_params, tr) if pooled else tr
            model, secs = fit(vspec, side)
            result["figures"].setdefault(name, {})[tname] = {k: rounded(score(model, te)) for k, te in tests.items()} | {"train_rows": len(side), "train_s": round(secs, 1)}
            print(f"{name}, trained on {tname} ({len(side)} rows): " + "; ".join(
                f"{k} {v['pca']:.3f} / {v['top1']:.3f} / {v['top5']:.3f}" for k, v in result["figures"][name][tname].items() if isinstance(v, dict)), flush=True)
    # the other splits: the same two training sides (earlier, all) of each, scored on its whole test
    # side and on the programs it held before (the test side the split table's cell was scored on)
    def fit_and_score(split: str, name: str, tname: str, vspec: ModelSpec, side, s_tests: dict) -> None:
        model, secs = fit(vspec, side)
        figs = {k: rounded(score(model, te)) for k, te in s_tests.items()}
        result.setdefault("other_splits", {}).setdefault(split, {}).setdefault(name, {})[tname] = figs | {"train_rows": len(side), "train_s": round(secs, 1)}
        print(f"{split}: {name}, trained on {tname} ({len(side)} rows): " + "; ".join(
            f"{k} {v['pca']:.3f} / {v['top1']:.3f} / {v['top5']:.3f}" for k, v in figs.items()), flush=True)

    for split in [x for x in a.other_splits.split(",") if x]:
        if split == "by_hardware":  # trained on the other platforms (needs --pooled): the slot's earlier programs are on their training side
            others = other_platforms(tables, a.slot)
            if not others:
                raise SystemExit("--other-splits by_hardware needs --pooled (the other platforms' tables)")
            earlier_rows = rows(table, False, True)
            s_tests = {split: table, f"{split}, earlier programs": table.take(earlier_rows),
                       f"{split}, new programs": table.take(np.setdiff1d(np.arange(len(table)), earlier_rows))}
            for name, (vspec, _) in variants.items():
                fit_and_score(split, name, "other platforms", vspec, pool([tables[t] for t in others], a.slot), s_tests)
            continue
        sides = split_sides(table, split, split_params)
        if sides is None:
            continue
        s_train, s_test = sides
        s_tests = {split: s_test, f"{split}, earlier programs": s_test.take(rows(s_test, False, True))}
        for name, (vspec, pooled) in variants.items():
            for tname, tr in {"earlier": s_train.take(rows(s_train, False, True)), "all": s_train}.items():
                fit_and_score(split, name, tname, vspec, joint_training_side(tables, a.slot, split, split_params, tr) if pooled else tr, s_tests)
    # the curve: n programs of each grown task on the training side, the other tasks whole
    f = train.frame
    task_of = f["task_id"].astype(str).to_numpy()
    is_grown = np.isin(task_of, sorted(grown))
    sizes = [int(s) for s in a.sizes.split(",")]
    for n in tqdm(sizes, desc="curve", unit="size"):
        runs = []
        for seed in range(a.seeds):
            rng = np.random.default_rng(seed)
            keep = [np.flatnonzero(~is_grown)]
            for t in sorted(grown):
                r = np.flatnonzero(task_of == t)
                keep.append(r if len(r) <= n else rng.choice(r, n, replace=False))
            model, _ = fit(spec, train.take(np.sort(np.concatenate(keep))))
            runs.append({k: rounded(score(model, te)) for k, te in tests.items() if k != "grown tasks, earlier programs"})
        result["curve"][str(n)] = {k: {m: float(np.median([r[k][m] for r in runs])) for m in ("pca", "top1", "top5")} | {"pca_runs": [r[k]["pca"] for r in runs]}
                                   for k in runs[0]}
    result["curve"]["all"] = {k: v for k, v in result["figures"][a.preset]["all"].items() if k in ("within_task", "grown tasks")}
    result |= {"seconds": round(time.time() - t0, 1), "command": command_line(a)}
    write_json(a.out, result)
    plot(result, Path(a.out).with_suffix(".png"))
    print("\n| training side | " + " | ".join(tests) + " |\n| --- |" + " --- |" * len(tests))
    for name, by_train in result["figures"].items():
        for tname, figs in by_train.items():
            print(f"| {name}, {tname} ({figs['train_rows']} rows) | " + " | ".join(" / ".join(f"{figs[k][m]:.3f}" for m in ("pca", "top1", "top5")) for k in tests) + " |")
    for split, by_name in result.get("other_splits", {}).items():
        sides = [k for k, v in next(iter(next(iter(by_name.values())).values())).items() if isinstance(v, dict)]
        print(f"\n| {split}: training side | " + " | ".join(sides) + " |\n| --- |" + " --- |" * len(sides))
        for name, by_train in by_name.items():
            for tname, figs in by_train.items():
                print(f"| {name}, {tname} ({figs['train_rows']} rows) | " + " | ".join(
                    " / ".join(f"{figs[k][m]:.3f}" for m in ("pca", "top1", "top5")) for k in sides) + " |")
    print("\n| programs a grown task (train) | within_task | grown tasks |\n| --- | --- | --- |")
    for n, c in result["curve"].items():
        print(f"| {n} | " + " | ".join(" / ".join(f"{c[k][m]:.3f}" for m in ("pca", "top1", "top5")) for k in ("within_task", "grown tasks")) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
