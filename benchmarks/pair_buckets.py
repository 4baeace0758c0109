"""Which pairs a within-task ranking gets wrong (issue 27 item 2): the test side's program pairs of
one slot, bucketed by how far apart their latencies are (|log2 ratio|), with the model's PCA in
each bucket beside the two-pass agreement of the same programs (the noise ceiling:
pass_agreement.py's pairing); then the clearly-apart pairs (latency ratio >= 2^0.8, ~1.74x) by
the faster program's speed within its task (`min_latency / latency`). Pairs are counted
unweighted here (the split study weights tasks by their networks); a pair counts when its latencies
differ, a tie in the model's scores counts half (as the package's PCA counts it). Counted a task at
a time, a block of pairs at once: memory does not grow with the test side's pairs.

    .venv/bin/python benchmarks/pair_buckets.py --slot zen3-2c.avx2-t1 --transforms identity,sqrt --out docs/results/pair_buckets-zen3-2c.json

The plot (`--out` with .png for .json) draws both tables as lines, one a model and the two passes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import command_line, split_sides, bundled_feature_tables, write_json
from pass_agreement import COLUMNS, latest_earlier_pass
from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, fit, predict
from tensorcost.params import load_params

RATIO_EDGES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, np.inf)  # |log2(latency ratio)|
CLEAR = 0.8
SPEED_EDGES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)


class BucketCounts:
    """Pairs and rightly-ordered pairs per bucket, accumulated a task at a time (a task's pairs are
    made in blocks of rows and dropped: memory holds one block, not the test side's pairs). A pair
    counts when the latencies differ; a tie in the score counts half, as `metrics.pairwise_counts`
    counts it, so the `all` row is the package's unweighted PCA."""

    def __init__(self) -> None:
        self.ratio_pairs = np.zeros(len(RATIO_EDGES) - 1, np.int64)
        self.ratio_right = np.zeros(len(RATIO_EDGES) - 1)
        self.speed_pairs = np.zeros(len(SPEED_EDGES) - 1, np.int64)
        self.speed_right = np.zeros(len(SPEED_EDGES) - 1)

    def add_task(self, scores: np.ndarray, latencies: np.ndarray, block: int = 512) -> None:
        s, lat = np.asarray(scores, np.float64), np.asarray(latencies, np.float64)
        n = len(lat)
        speed = lat.min() / lat
        for a in range(0, n - 1, block):
            i, j = np.nonzero(np.arange(a, min(n, a + block))[:, None] < np.arange(n)[None, :])
            i = i + a
            keep = lat[i] != lat[j]
            i, j = i[keep], j[keep]
            right = np.where(s[i] == s[j], 0.5, (np.sign(s[i] - s[j]) == np.sign(lat[j] - lat[i])).astype(np.float64))
            ratio = np.abs(np.log2(lat[i] / lat[j]))
            # left-closed ratio buckets ([0, 0.05), ...); right-closed speed buckets ((0.1, 0.2], ...), the first holding 0
            rb = np.searchsorted(RATIO_EDGES, ratio, side="right") - 1
            self.ratio_pairs += np.bincount(rb, minlength=len(self.ratio_pairs))
            self.ratio_right += np.bincount(rb, right, minlength=len(self.ratio_right))
            clear = ratio >= CLEAR
            sb = np.clip(np.searchsorted(SPEED_EDGES, np.maximum(speed[i], speed[j])[clear], side="left") - 1, 0, len(self.speed_pairs) - 1)
            self.speed_pairs += np.bincount(sb, minlength=len(self.speed_pairs))
            self.speed_right += np.bincount(sb, right[clear], minlength=len(self.speed_right))

    def tables(self) -> dict:
        def table(pairs, right, edges, closed_right):
            total = max(int(pairs.sum()), 1)
            return [{"bucket": (f"({lo:g}, {hi:g}]" if closed_right and k else f"[{lo:g}, {hi:g}]" if closed_right else f"[{lo:g}, {hi:g})"),
                     "pairs": int(n), "share": round(int(n) / total, 4), "pca": round(float(r / n), 4) if n else None}
                    for k, (lo, hi, n, r) in enumerate(zip(edges[:-1], edges[1:], pairs, right))]

        pairs = int(self.ratio_pairs.sum())
        return {"pca": round(float(self.ratio_right.sum() / pairs), 4) if pairs else None, "pairs": pairs,
                "by_ratio": table(self.ratio_pairs, self.ratio_right, RATIO_EDGES, False),
                "clear_pairs_by_faster_speed": table(self.speed_pairs, self.speed_right, SPEED_EDGES, True)}


def bucket_counts(frame: pd.DataFrame, score: str) -> dict:
    """`BucketCounts.tables` of `score` (higher: faster) over the tasks of `frame`."""
    counts = BucketCounts()
    for _, g in frame.groupby("task_id", sort=False):
        if len(g) >= 2:
            counts.add_task(g[score].to_numpy(), g["latency_s"].to_numpy())
    return counts.tables()


def plot(results: dict, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "by_ratio", "every pair, by |log2 latency ratio|"),
                           (axes[1], "clear_pairs_by_faster_speed", f"pairs >= 2^{CLEAR} apart, by the faster one's speed")):
        for name, r in results.items():
            rows = [b for b in r[key] if b["pca"] is not None]
            ax.plot([b["bucket"] for b in rows], [b["pca"] for b in rows], marker="o", label=name, linestyle="--" if name == "two_pass" else "-")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("PCA")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--preset", default="lightgbm_reg")
    ap.add_argument("--transforms", default="identity,sqrt", help="label_transform values of the preset to compare")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.time()
    p = load_params()
    base = ModelSpec.preset(p, a.preset)
    table = bundled_feature_tables([a.slot])[a.slot]
    train, test = split_sides(table, "within_task", p.split.model_dump())
    frame = test.frame[["task_id", "program_id", "latency_s"]].copy()
    for tf in a.transforms.split(","):
        model, _ = fit(ModelSpec(base.family, {**base.params, "label_transform": tf}), train)
        frame[tf] = predict(model, test)
    try:
        earlier = latest_earlier_pass(a.slot)
    except (FileNotFoundError, OSError):
        earlier = None
    columns = list(a.transforms.split(","))
    if earlier is not None:
        now = dataset.bundled_tables([a.slot])[a.slot].to_pandas()[COLUMNS]
        both = earlier.merge(now, on=["task_id", "program_id"], suffixes=("_earlier", ""))
        both = both[(both.error_no == 0) & (both.error_no_earlier == 0)]
        # the earlier pass ranks today's latencies: on the test side's programs that both passes hold
        frame = frame.merge(both[["task_id", "program_id", "latency_s_earlier"]], on=["task_id", "program_id"], how="left")
        frame["two_pass"] = -frame["latency_s_earlier"]
    results = {}
    for col in columns + (["two_pass"] if earlier is not None else []):
        rows = frame.dropna(subset=["two_pass"]) if col == "two_pass" else frame
        results[col] = bucket_counts(rows, col)
    write_json(a.out, {"slot": a.slot, "preset": a.preset, "params": base.params, "results": results,
                       "seconds": round(time.time() - t0, 1), "command": command_line(a)})
    plot(results, Path(a.out).with_suffix(".png"))
    names = list(results)
    print(f"\n{a.slot}, within_task test side: share of pairs and PCA per bucket of |log2 latency ratio|\n")
    print("| |log2 ratio| | share | " + " | ".join(names) + " |\n| --- | --- |" + " --- |" * len(names))
    for k, row in enumerate(results[names[0]]["by_ratio"]):
        print(f"| {row['bucket']} | {row['share']:.3f} | " + " | ".join(f"{results[n]['by_ratio'][k]['pca']}" for n in names) + " |")
    print("| all | 1 | " + " | ".join(f"{results[n]['pca']}" for n in names) + " |")
    print(f"\npairs at least 2^{CLEAR} apart, by the faster program's speed within its task\n")
    print("| faster speed | share | " + " | ".join(names) + " |\n| --- | --- |" + " --- |" * len(names))
    for k, row in enumerate(results[names[0]]["clear_pairs_by_faster_speed"]):
        print(f"| {row['bucket']} | {row['share']:.3f} | " + " | ".join(f"{results[n]['clear_pairs_by_faster_speed'][k]['pca']}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
