"""The pruning study (issue 14): how much of a platform's measured programs a cost model needs.

    .venv/bin/python benchmarks/pruning_study.py            # ~1 h on 2 cores; resumable

For every strategy of `tensorcost.pruning` (random and random_tasks with seeds 0-2, the others
with the seeds given), every kept fraction and every model: prune the training side, train on
what is kept, score on the *unpruned* test side:

- `by_network`: within the source platform, the split's test networks (params.yaml split) held out;
- `by_hardware`: the whole source platform is the pool; the test is each other platform's records
  of the same programs (a model moved to hardware it never saw, zero-shot).

Pruning and transfer: the attention model trained on each strategy's 20% variant and on the full
pool is fine-tuned on k% of each other platform (`tensorcost.transfer.transfer_study`).

Rows go to docs/results/pruning.json as they finish (a killed study resumes where it stopped);
docs/results/pruning-summary.json holds the verdicts (`pruning.summarize`), pruning.png the plot,
pruning_pca.csv the curve `dvc plots show` draws, pruning-transfer.json the transfer curves
(plotted per platform in pruning-transfer-<platform>.png).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from tensorcost import pruning
from tensorcost.evaluation import ModelSpec, train_test
from tensorcost.features import FeatureTable, featurize_records, load_feature_table, write_feature_store
from tensorcost.hardware.catalog import HARDWARE_FEATURE_NAMES, catalog_target
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params
from tensorcost.transfer import transfer_study

BUNDLED = Path("data/bundled/platforms")


def load_slot(slot: str, work: Path) -> FeatureTable:
    platform, variant = slot.split(".")
    records = pq.read_table(BUNDLED / platform / f"{variant}.parquet")
    table = featurize_records(records, catalog_target(slot).features(), HARDWARE_FEATURE_NAMES, slot=slot)
    write_feature_store(table, work, slot)
    return load_feature_table(work, slot)[0]


def score(model, test: FeatureTable) -> dict:
    te = test.frame
    r = ranking_report(te["task_id"].tolist(), model.predict(test), te["latency_s"].to_numpy(), test.task_weights())
    return {"pca": float(r.pca), "top1": float(r.top1), "top5": float(r.top5)}


def row_key(r: dict) -> tuple:
    return (r["strategy"], r["model"], r["split"], r["test_slot"], float(r["kept_fraction"]), int(r["seed"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="sapphirerapids-2c.avx2-t1", help="the pruned platform's bundled slot")
    ap.add_argument("--others", default="zen5-2c.avx2-t1,zen3-2c.avx2-t1", help="other platforms' slots: by_hardware test sides and transfer targets")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", default="lightgbm_rank,attention")
    ap.add_argument("--strategies", default=",".join(pruning.STRATEGIES))
    ap.add_argument("--percents", default="50,35,20,10,5")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of every strategy but kcenter (deterministic given its scout)")
    ap.add_argument("--transfer-percent", type=int, default=20)
    ap.add_argument("--transfer-k", default="5,10,25")
    ap.add_argument("--out-dir", default="docs/results")
    args = ap.parse_args()

    p = load_params(args.params)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_file = out_dir / "pruning.json"
    rows = json.loads(rows_file.read_text()) if rows_file.exists() else []
    done = {row_key(r) for r in rows}
    work = Path(tempfile.mkdtemp(prefix="tc-prune-"))
    source = load_slot(args.source, work)
    others = {s: load_slot(s, work) for s in args.others.split(",") if s}
    models = {k: ModelSpec.preset(p, k) for k in args.models.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    fractions = [int(x) / 100 for x in args.percents.split(",")]
    train_by_net, test_by_net = train_test(source, "by_network", p.split.model_dump())
    splits = {"by_network": (train_by_net, {args.source: test_by_net}), "by_hardware": (source, others)}
    fam, scout_params = p.model_spec("attention")

    def save() -> None:
        rows_file.write_text(json.dumps(rows, indent=0))

    jobs = []
    for split, (pool, tests) in splits.items():
        for m in models:
            jobs += [(split, pruning.FULL, 1.0, s, m) for s in seeds]  # the full pool, every model seed: training noise
        for strategy in args.strategies.split(","):
            for f in fractions:
                for s in (seeds if strategy != "kcenter" else seeds[:1]):
                    for m in models:
                        jobs.append((split, strategy, f, s, m))
    todo = [j for j in jobs if any((j[1], j[4], j[0], t, j[2], j[3]) not in done for t in splits[j[0]][1])]
    print(f"{len(jobs)} runs, {len(jobs) - len(todo)} already in {rows_file}")
    scouts = {split: pruning.Scout(params=scout_params) for split in splits}
    kept_cache: dict[tuple, list[str]] = {}
    for split, strategy, f, seed, m in tqdm(todo, desc="pruning study", unit="run"):
        pool, tests = splits[split]
        t0 = time.perf_counter()
        if strategy == pruning.FULL:
            ids = pool.frame["record_id"].tolist()
        else:
            key = (split, strategy, f, seed)
            if key not in kept_cache:
                kept_cache[key] = pruning.prune(strategy, pool, f, seed, scouts[split])
            ids = kept_cache[key]
        prune_s = time.perf_counter() - t0
        train = pruning.kept_table(pool, pruning.rows_of(pool, ids))
        spec = models[m]
        params = {**spec.params, "seed": seed} if strategy == pruning.FULL else spec.params
        model = ModelSpec(spec.family, params).create(train)
        t0 = time.perf_counter()
        model.fit(train)
        train_s = time.perf_counter() - t0
        for slot, test in tests.items():
            r = {"strategy": strategy, "model": m, "split": split, "test_slot": slot, "kept_fraction": f, "seed": seed,
                 "n_train": len(train), "n_pool": len(pool), "train_seconds": round(train_s, 3), "prune_seconds": round(prune_s, 3), **score(model, test)}
            if row_key(r) not in done:
                rows.append(r)
                done.add(row_key(r))
        save()

    summary = pruning.summarize(rows)
    (out_dir / "pruning-summary.json").write_text(json.dumps(summary, indent=1))
    write_curve_csv(summary, out_dir / "pruning_pca.csv")
    plot(rows, summary, out_dir / "pruning.png")
    transfer_file = out_dir / "pruning-transfer.json"
    if not transfer_file.exists():
        transfer_file.write_text(json.dumps(pruned_transfer(source, others, scout_params, args, splits, scouts), indent=1))
    from tensorcost.plots import learning_curves

    for slot, curves in json.loads(transfer_file.read_text()).items():
        learning_curves(curves, f"attention trained on {args.source} (full or pruned), zero-shot and fine-tuned on k% of {slot}",
                        out_dir / f"pruning-transfer-{slot.split('.')[0]}.png")
    print(f"wrote {rows_file}, {out_dir / 'pruning-summary.json'}, {out_dir / 'pruning.png'}, {transfer_file}")


def pruned_transfer(source, others, scout_params, args, splits, scouts) -> dict:
    """The attention model trained on each strategy's `transfer_percent`% of the source platform
    (seed 0) and on all of it, zero-shot and fine-tuned on k% of every other platform."""
    pool, _ = splits["by_hardware"]
    sources = {}
    f = args.transfer_percent / 100
    for strategy in [pruning.FULL, *args.strategies.split(",")]:
        ids = pool.frame["record_id"].tolist() if strategy == pruning.FULL else pruning.prune(strategy, pool, f, 0, scouts["by_hardware"])
        train = pruning.kept_table(pool, pruning.rows_of(pool, ids))
        model = ModelSpec("attention", scout_params).create(train)
        model.fit(train)
        sources[strategy if strategy == pruning.FULL else f"{strategy}-{args.transfer_percent}"] = model
    ks = [float(k) for k in args.transfer_k.split(",")]
    return {slot: transfer_study(sources, data, ks, {}, test_fraction=0.5, seed=0).curves
            for slot, data in tqdm(others.items(), desc="pruned transfer")}


def write_curve_csv(summary: list[dict], out: Path) -> None:
    """Mean PCA per kept percent, one column per strategy (by_network, lightgbm_rank when it was
    studied): the curve `dvc plots show` draws (dvc.yaml's top-level plots)."""
    models = [s["model"] for s in summary]
    first = "lightgbm_rank" if "lightgbm_rank" in models else (models[0] if models else None)
    cells = {s["strategy"]: s for s in summary if s["split"] == "by_network" and s["model"] == first}
    percents = sorted({float(f) for s in cells.values() for f in s["by_fraction"]}, reverse=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kept_percent", *cells])
        full = next(iter(cells.values()))["full_pca"] if cells else None
        w.writerow([100, *[round(full, 4) if full is not None else "" for _ in cells]])
        for f in percents:
            w.writerow([round(f * 100), *[round(c["by_fraction"][f"{f:g}"]["pca"], 4) if f"{f:g}" in c["by_fraction"] else "" for c in cells.values()]])


def plot(rows: list[dict], summary: list[dict], out: Path) -> None:
    """PCA against kept fraction per strategy (mean over seeds, band = min..max), one panel per
    (split, model); the full pool's PCA (mean over model seeds) as a dashed line with its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(s["split"], s["model"]) for s in summary})
    cols = min(2, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.5 * cols, 3.9 * rows_n), squeeze=False)
    for ax, (split, model) in zip(axes.flat, panels):
        for s in summary:
            if (s["split"], s["model"]) != (split, model) or (split == "by_hardware" and s["test_slot"] != summary_slot(summary, split)):
                continue
            fs = sorted(float(f) for f in s["by_fraction"])
            pcs = [[r["pca"] for r in rows if r["strategy"] == s["strategy"] and r["model"] == model and r["split"] == split
                    and r["test_slot"] == s["test_slot"] and abs(r["kept_fraction"] - f) < 1e-9] for f in fs]
            xs = [f * 100 for f in fs]
            line = ax.plot(xs, [np.mean(v) for v in pcs], marker="o", ms=3, label=s["strategy"])[0]
            ax.fill_between(xs, [min(v) for v in pcs], [max(v) for v in pcs], color=line.get_color(), alpha=0.15)
            if s["full_pca"] is not None:
                ax.axhline(s["full_pca"], color="k", ls="--", lw=0.8)
                ax.axhspan(s["full_pca"] - 0.01, s["full_pca"], color="k", alpha=0.05)
        slot = summary_slot(summary, split)
        ax.set_title(f"{model}, {split}" + (f" (test: {slot})" if split == "by_hardware" else ""), fontsize=8)
        ax.set_xscale("log")
        ticks = sorted({float(f) * 100 for s in summary for f in s["by_fraction"]})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("kept % of the training pool")
        ax.set_ylabel("PCA (unpruned test side)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Pruning: PCA vs kept fraction (band: seeds' min..max; dashed: full pool, grey: within 1 point)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def summary_slot(summary: list[dict], split: str) -> str:
    return min(s["test_slot"] for s in summary if s["split"] == split)


if __name__ == "__main__":
    main()
