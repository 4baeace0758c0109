"""Where by_family loses (issue 27 item 2): the pooled models' figures on the unseen-family test
side broken down by operator kind and by held-out family, next to what the same model reaches on
those very tasks once it has seen half of their programs (the `seen` ceiling).

    .venv/bin/python benchmarks/by_family_errors.py --out docs/results/by_family_errors.json \
        [--ms-dir /tmp/ms]    # adds the joint (MetaSchedule features beside ours)

Per platform, each model trains as the train stage pools (every CPU platform's by_family training
side, `evaluation.joint_training_side`) and is scored on the platform's test side; per test task
the pair counts and weighted latencies (`metrics.task_stats`) are kept, so a group's figures are
the same sums the split study makes, over that group's tasks only. `unseen` trains without the
held-out families; `seen` adds half A of every test task's programs (on every platform, labelled
from A alone) and scores half B. A group far below its `seen` figure lacks what carries over
from other families; one whose `seen` figure is low too is limited by the features or model.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import attach_ms_features, bundled_feature_tables, command_line, seen_halves, split_benchmark_args, split_sides, write_json
from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, fit, joint_training_side, network_weights, pool, predict
from tensorcost.features import FeatureTable
from tensorcost.metrics import figures_from_stats, task_stats
from tensorcost.params import load_params
from tensorcost.zoo import architecture_family


def task_info() -> dict[str, dict]:
    """op_kind and the architecture families of each bundled CPU task (tasks.json)."""
    path = Path(dataset.programs_dir("cpu")) / "tasks.json"
    return {t["task_id"]: {"op_kind": t["op_kind"], "name": t["task_name"],
                           "families": sorted({architecture_family(n) for n in t["networks"]})}
            for t in json.loads(path.read_text())["tasks"]}


def per_task_stats(model, test: FeatureTable) -> dict[str, np.ndarray]:
    """task id -> its STAT_COLUMNS row (pairs and network-weighted latencies)."""
    te = test.frame
    ids, stats = task_stats(te["task_id"], predict(model, test), te["latency_s"].to_numpy(), network_weights(te))
    return dict(zip(ids, stats))


def group_figures(stats_by_slot: dict[str, dict[str, np.ndarray]], tasks_of_group: list[str]) -> dict:
    """The group's PCA / top-1 / top-5 on each platform (sums over its tasks), their mean, and
    the group's share of the platforms' misordered pairs."""
    per_slot = {}
    for slot, stats in stats_by_slot.items():
        rows = np.array([stats[t] for t in tasks_of_group if t in stats])
        if len(rows):
            f = figures_from_stats(rows)
            per_slot[slot] = {k: float(v) for k, v in f.items()} | {"misordered": float(rows[:, 1].sum() - rows[:, 0].sum())}
    return {k: float(np.mean([r[k] for r in per_slot.values()])) for k in ("pca", "top1", "top5")} | {
        "misordered_pairs": float(np.sum([r["misordered"] for r in per_slot.values()]))}


def main() -> int:
    ap = split_benchmark_args(__doc__, ("by_family",))
    ap.add_argument("--models", default="lightgbm_reg", help="comma-separated presets (lightgbm_joint needs --ms-dir)")
    ap.add_argument("--ms-dir", default=None, help="MetaSchedule features of the slots (extracted there first where missing)")
    ap.add_argument("--no-seen", action="store_true", help="skip the seen ceiling (half the time)")
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    split_params = p.split.model_dump()
    slots = a.slots.split(",")
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    tables = bundled_feature_tables(slots)
    if a.ms_dir:
        missing = set(slots) - attach_ms_features(tables, Path(a.ms_dir))
        if missing:
            ap.error(f"no MetaSchedule features for {sorted(missing)}")
    info = task_info()
    sides = {s: split_sides(tables[s], "by_family", split_params) for s in slots}
    # the seen ceiling: every platform's half A of the test tasks, labelled from A alone
    halves = {s: seen_halves(test, split_params) for s, (_, test) in sides.items()}
    half_a, half_b = {s: h[0] for s, h in halves.items()}, {s: h[1] for s, h in halves.items()}

    stats: dict = defaultdict(lambda: defaultdict(dict))  # model -> setting -> slot -> task -> stats
    for key in models:
        spec = ModelSpec.preset(p, key)
        for s in slots:
            train, test = sides[s]
            pooled = joint_training_side(tables, s, "by_family", split_params, train)
            model, _ = fit(spec, pooled)
            stats[key]["unseen"][s] = per_task_stats(model, test)
            stats[key]["unseen on half B"][s] = per_task_stats(model, half_b[s])
            if not a.no_seen:
                seen_train = pool([pooled, half_a[s], *(half_a[o] for o in slots if o != s)], s)
                model, _ = fit(spec, seen_train)
                stats[key]["seen, on half B"][s] = per_task_stats(model, half_b[s])
            print(f"{key} {s.split('.')[0]}: done ({time.time() - t0:.0f} s)", flush=True)

    test_tasks = sorted({t for s in slots for t in sides[s][1].frame["task_id"].unique()})
    groups = {"op_kind": defaultdict(list), "family": defaultdict(list)}
    for t in test_tasks:
        groups["op_kind"][info[t]["op_kind"]].append(t)
        for fam in info[t]["families"]:
            if fam in split_params["test_families"]:
                groups["family"][fam].append(t)
    out: dict = {"slots": slots, "models": models, "test_tasks": len(test_tasks), "groups": {}, "tasks": {}}
    for by, members in groups.items():
        out["groups"][by] = {g: {"tasks": len(ts), "programs_per_platform": int(np.median([tables[s].frame["task_id"].isin(ts).sum() for s in slots])),
                                 "figures": {key: {setting: group_figures(stats[key][setting], ts) for setting in stats[key]} for key in models}}
                             for g, ts in sorted(members.items(), key=lambda kv: -len(kv[1]))}
    for t in test_tasks:
        out["tasks"][t] = info[t] | {key: {setting: group_figures(stats[key][setting], [t]) for setting in stats[key]} for key in models}
    out["all"] = {key: {setting: group_figures(stats[key][setting], test_tasks) for setting in stats[key]} for key in models}
    out["seconds"] = round(time.time() - t0, 1)
    out["command"] = command_line(a)
    write_json(a.out, out)

    settings = list(stats[models[0]])
    for by in groups:
        print(f"\nby_family, by {by}: PCA / top-1 / top-5, mean over {len(slots)} platforms; share of misordered pairs\n")
        print(f"| {by} | tasks | " + " | ".join(f"{k}: {st}" for k in models for st in settings) + " |")
        print("| --- | --- |" + " --- |" * (len(models) * len(settings)))
        total = {k: {st: out["all"][k][st]["misordered_pairs"] for st in settings} for k in models}
        for g, row in out["groups"][by].items():
            cells = []
            for k in models:
                for st in settings:
                    f = row["figures"][k][st]
                    share = f["misordered_pairs"] / total[k][st] if total[k][st] else float("nan")
                    cells.append(f"{f['pca']:.3f} / {f['top1']:.3f} / {f['top5']:.3f} ({share:.0%})")
            print(f"| {g} | {row['tasks']} | " + " | ".join(cells) + " |")
        cells = [" / ".join(f"{out['all'][k][st][m]:.3f}" for m in ("pca", "top1", "top5")) for k in models for st in settings]
        print(f"| all | {len(test_tasks)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
