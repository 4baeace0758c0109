"""Does the transfer stage's choice depend on whether the new machine's programs were measured
elsewhere? (issue 27 item 1; `host.programs: fresh`, the default since the twenty-second session.)

A "new machine" is a platform of the bundled set whose tasks a growth made denser (Zen 3: its new
programs were measured on it alone). Host-like samples of it, `--tasks` grown tasks x `--per-task`
programs (the `make run` sample's shape), are drawn twice from the same tasks: from the programs
the other platforms measured too (`bundled`: the stage's sample before `host.programs: fresh`)
and from those no other platform measured (`fresh`). On each, `transfer.transfer_study` runs as
the stage does (same test fraction, fractions, bootstrap), with sources trained on the other
platforms (one `--preset` model each, and that preset on them pooled: the default) and peers
trained from scratch on k% of the sample. The figures of each approach and the choice, medians
over `--seeds` draws of tasks and programs.

    .venv/bin/python benchmarks/transfer_fresh.py --out docs/results/transfer_fresh-zen3-2c.json
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
from tqdm import tqdm

from common import CPU_SLOTS, bundled_feature_tables, command_line, write_json
from tensorcost.evaluation import ModelSpec, fit, other_platforms, pool
from tensorcost.params import load_params
from tensorcost.transfer import transfer_study


def sample_rows(frame, tasks: list[str], keys: set[tuple[str, str]], per_task: int, rng) -> np.ndarray:
    """Row numbers of `per_task` programs of each task among `keys` (seeded)."""
    task_of = frame["task_id"].astype(str).to_numpy()
    key_in = np.fromiter(((t, p) in keys for t, p in zip(task_of, frame["program_id"].astype(str))), dtype=bool, count=len(frame))
    out = []
    for t in tasks:
        r = np.flatnonzero((task_of == t) & key_in)
        out.append(rng.choice(r, min(per_task, len(r)), replace=False))
    return np.sort(np.concatenate(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--peers", default="lightgbm_reg,lightgbm_rank", help="presets trained from scratch on k%% of the sample")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--per-task", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    tp = p.transfer
    tables = bundled_feature_tables([a.slot] + [s for s in CPU_SLOTS if s != a.slot])
    table = tables[a.slot]
    others = other_platforms(tables, a.slot)
    def keys_of(t) -> set[tuple[str, str]]:
        return set(zip(t.frame["task_id"].astype(str), t.frame["program_id"].astype(str)))

    elsewhere = set().union(*(keys_of(tables[s]) for s in others))
    f = table.frame
    keys = keys_of(table)
    kinds = {"bundled": keys & elsewhere, "fresh": keys - elsewhere}
    both = sorted({t for t, _ in kinds["fresh"]} & {t for t, _ in kinds["bundled"]})
    count = {k: Counter(t for t, _ in v) for k, v in kinds.items()}
    eligible = [t for t in both if min(count["fresh"][t], count["bundled"][t]) >= a.per_task]
    if len(eligible) < a.tasks:
        raise SystemExit(f"{a.slot}: {len(eligible)} tasks hold {a.per_task} programs of each kind, fewer than --tasks {a.tasks}")
    spec = ModelSpec.preset(p, a.preset)
    print(f"sources: {a.preset} on each of {', '.join(others)}, and pooled", flush=True)
    sources = {s: fit(spec, tables[s])[0] for s in tqdm(others, desc="sources", unit="model")}
    pooled = {a.preset: fit(spec, pool([tables[s] for s in others], "pooled"))[0]}
    peers = {k: ModelSpec.preset(p, k) for k in a.peers.split(",") if k}
    runs: dict = {k: [] for k in kinds}
    for seed in tqdm(range(a.seeds), desc="draws", unit="draw"):
        rng = np.random.default_rng(seed)
        tasks = sorted(rng.choice(eligible, a.tasks, replace=False).tolist())
        for kind, pool_keys in kinds.items():
            sample = table.take(sample_rows(f, tasks, pool_keys, a.per_task, np.random.default_rng(seed)))
            study = transfer_study(sources, sample, tp.fractions, peers, test_fraction=tp.test_fraction, seed=tp.seed, pooled=pooled,
                                   select_metrics=p.train.candidate_metrics, confidence=tp.confidence)
            runs[kind].append({"tasks": tasks, "curves": study.curves, "choice": {k: v for k, v in study.choice.items() if k in (
                "approach", "k", "pca", "top1", "top5", "default", "difference_ci", "reason")}, "best": study.choice.get("best")})
    summary: dict = {}
    for kind, rs in runs.items():
        approaches = sorted({(ap_, k) for r in rs for ap_, by_k in r["curves"].items() for k in by_k})
        summary[kind] = {
            "figures": {f"{ap_}@{k}": {m: float(np.median([r["curves"][ap_][k][m] for r in rs if k in r["curves"].get(ap_, {})]))
                                        for m in ("pca", "top1", "top5")} for ap_, k in approaches},
            "chosen": dict(Counter(f"{r['choice']['approach']}@{r['choice']['k']}" for r in rs)),
            "best": dict(Counter(f"{r['best']['approach']}@{r['best']['k']}" for r in rs if r.get("best"))),
            "chosen_figures": {m: float(np.median([r["choice"][m] for r in rs])) for m in ("pca", "top1", "top5")},
        }
    result = {"slot": a.slot, "sources": others, "preset": a.preset, "tasks": a.tasks, "per_task": a.per_task, "seeds": a.seeds,
              "eligible_tasks": len(eligible), "fractions": tp.fractions, "test_fraction": tp.test_fraction,
              "summary": summary, "runs": runs, "seconds": round(time.time() - t0, 1), "command": command_line(a)}
    write_json(a.out, result)
    names = sorted(summary["fresh"]["figures"], key=lambda n: -summary["fresh"]["figures"][n]["pca"])
    print("\n| approach@k | programs measured elsewhere too (bundled) | programs measured on this machine only (fresh) |\n| --- | --- | --- |")
    for n in names:
        cells = [" / ".join(f"{summary[k]['figures'][n][m]:.3f}" for m in ("pca", "top1", "top5")) if n in summary[k]["figures"] else "-" for k in kinds]
        print(f"| {n} | " + " | ".join(cells) + " |")
    for kind in kinds:
        print(f"\n{kind}: chosen {summary[kind]['chosen']}, best {summary[kind]['best']}, the chosen model's medians "
              + " / ".join(f"{summary[kind]['chosen_figures'][m]:.3f}" for m in ("pca", "top1", "top5")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
