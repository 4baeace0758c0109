"""Ranking metrics as the field defines them (TenSet, TLP). Pure NumPy, columnar.

Scores are "higher = predicted faster"; latencies are seconds (lower = faster). Task ids may be
any array-like (a categorical column stays categorical): rows are grouped by integer codes, so
the per-row cost is a few integers whatever the number of rows or tasks, and pairs are counted
in blocks, so a task of TenSet's ~3,700 programs never holds its 6.8M pairs at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

PAIR_BLOCK = 1 << 20  # pairs compared at a time within a task (bounds a task's transient memory)


def factorize(values) -> tuple[np.ndarray, object]:
    """(an integer code a row, the distinct values in first-appearance order): a categorical column
    stays categorical, anything else becomes one array (no per-row Python list)."""
    return pd.factorize(values if isinstance(values, (pd.Series, pd.Index, pd.Categorical)) else np.asarray(values, dtype=object), sort=False)


def task_groups(task_ids) -> Iterator[tuple[object, np.ndarray]]:
    """(task id, its row indices) of each task, in first-appearance order."""
    codes, uniques = factorize(task_ids)
    if not len(codes):
        return
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniques)))])
    for g in range(len(uniques)):
        yield uniques[g], order[bounds[g]:bounds[g + 1]]


def pairwise_counts(scores: np.ndarray, latencies: np.ndarray) -> tuple[float, int]:
    """(correctly ordered pairs, comparable pairs) for one task.

    A pair is comparable when the measured latencies differ; a tie in the prediction counts half.
    """
    s = np.asarray(scores, dtype=np.float64)
    lat = np.asarray(latencies, dtype=np.float64)
    n = len(lat)
    good = 0.0
    total = 0
    rows = max(1, PAIR_BLOCK // max(n, 1))
    for a in range(0, n, rows):
        b = min(n, a + rows)
        dl = lat[a:b, None] - lat[None, :]
        ds = s[a:b, None] - s[None, :]
        upper = np.arange(a, b)[:, None] < np.arange(n)[None, :]  # each pair once (i < j)
        comparable = upper & (dl != 0)
        # i faster than j (dl < 0) is predicted right when s_i > s_j.
        correct = comparable & (((dl < 0) & (ds > 0)) | ((dl > 0) & (ds < 0)))
        ties = comparable & (ds == 0)
        good += float(correct.sum()) + 0.5 * float(ties.sum())
        total += int(comparable.sum())
    return good, total


def pairwise_comparison_accuracy(task_ids, scores: Sequence[float], latencies: Sequence[float]) -> float:
    """PCA over all pairs within each task, weighted by each task's number of comparable pairs."""
    _, stats = task_stats(task_ids, scores, latencies)
    return float(figures_from_stats(stats)["pca"]) if len(stats) else float("nan")


def top_k_score(task_ids, scores: Sequence[float], latencies: Sequence[float], k: int, weights: dict | None = None) -> float:
    """sum_t w_t * best_latency_t / sum_t w_t * min(latency of the k best-predicted programs of t)."""
    scores = np.asarray(scores, dtype=np.float64)
    latencies = np.asarray(latencies, dtype=np.float64)
    num = den = 0.0
    for t, ix in task_groups(task_ids):
        w = float(weights.get(t, 1.0)) if weights else 1.0
        order = np.argsort(-scores[ix], kind="stable")[:k]
        num += w * latencies[ix].min()
        den += w * latencies[ix][order].min()
    return num / den if den else float("nan")


def peak_score(task_ids, scores: Sequence[float], latencies: Sequence[float], k: int) -> float:
    """TenSet's peak@k (its `metric_peak_score`), beside our top-k: per task, the best throughput
    found after measuring the i best-predicted programs, relative to the task's best, averaged
    over i = 1..k (a search that measures in the model's order: the area under its curve), then
    averaged over tasks unweighted (as TenSet reports it; top-k weights tasks by occurrence and
    looks only at i = k)."""
    scores = np.asarray(scores, dtype=np.float64)
    latencies = np.asarray(latencies, dtype=np.float64)
    per_task = []
    for _, ix in task_groups(task_ids):
        order = np.argsort(-scores[ix], kind="stable")[:k]
        best_so_far = np.minimum.accumulate(latencies[ix][order])
        per_task.append(float(np.mean(latencies[ix].min() / best_so_far)))
    return float(np.mean(per_task)) if per_task else float("nan")


@dataclass(frozen=True)
class RankingReport:
    pca: float
    top1: float
    top5: float
    n_tasks: int
    n_records: int

    def to_dict(self) -> dict:
        return {"pca": float(self.pca), "top1": float(self.top1), "top5": float(self.top5), "n_tasks": int(self.n_tasks), "n_records": int(self.n_records)}


STAT_COLUMNS = ("good_pairs", "pairs", "w_best", "w_top1", "w_top5")


def task_stats(task_ids, scores: Sequence[float], latencies: Sequence[float], weights: dict | None = None) -> tuple[list, np.ndarray]:
    """(task ids, (n_tasks, 5) array of STAT_COLUMNS): what each task adds to PCA, top-1 and
    top-5. Sums over any set of tasks give those figures for that set (`report_from_stats`), so a
    bootstrap over tasks costs no re-ranking."""
    scores = np.asarray(scores, dtype=np.float64)
    latencies = np.asarray(latencies, dtype=np.float64)
    ids, rows = [], []
    for t, ix in task_groups(task_ids):
        s, lat = scores[ix], latencies[ix]
        c, n = pairwise_counts(s, lat)
        w = float(weights.get(t, 1.0)) if weights else 1.0
        order = np.argsort(-s, kind="stable")
        ids.append(t)
        rows.append((c, n, w * lat.min(), w * lat[order[:1]].min(), w * lat[order[:5]].min()))
    return ids, np.asarray(rows, dtype=np.float64).reshape(-1, len(STAT_COLUMNS))


def figures_from_stats(stats: np.ndarray) -> dict[str, np.ndarray]:
    """PCA, top-1, top-5 from summed task stats; `stats` (..., n_tasks, 5): leading axes (a
    bootstrap's resamples) are kept."""
    tot = stats.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"pca": tot[..., 0] / tot[..., 1], "top1": tot[..., 2] / tot[..., 3], "top5": tot[..., 2] / tot[..., 4]}


def objective(figures: dict, keys: Sequence[str]) -> np.ndarray:
    """The mean of `keys` (how `candidate` is chosen everywhere)."""
    return np.mean([np.asarray(figures[k], dtype=np.float64) for k in keys], axis=0)


def bootstrap_difference(stats_a: np.ndarray, stats_b: np.ndarray, keys: Sequence[str], confidence: float = 0.95, n: int = 2000,
                         seed: int = 0) -> tuple[float, float]:
    """Confidence interval of objective(a) - objective(b) on the same test tasks, resampling
    tasks with replacement (tasks, not programs, are the independent units)."""
    t = len(stats_a)
    if t == 0 or len(stats_b) != t:
        raise ValueError(f"bootstrap over {t} and {len(stats_b)} tasks: both need the same, non-empty test tasks")
    idx = np.random.default_rng(seed).integers(0, t, size=(n, t))
    diff = objective(figures_from_stats(stats_a[idx]), keys) - objective(figures_from_stats(stats_b[idx]), keys)
    diff = diff[np.isfinite(diff)]
    if not len(diff):
        return float("nan"), float("nan")
    lo, hi = np.quantile(diff, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def ranking_report(task_ids, scores: Sequence[float], latencies: Sequence[float], weights: dict | None = None) -> RankingReport:
    """PCA, top-1 and top-5 in one pass over the tasks."""
    _, stats = task_stats(task_ids, scores, latencies, weights)
    f = figures_from_stats(stats) if len(stats) else {"pca": np.nan, "top1": np.nan, "top5": np.nan}
    return RankingReport(pca=float(f["pca"]), top1=float(f["top1"]), top5=float(f["top5"]), n_tasks=len(stats), n_records=len(np.asarray(latencies)))


def random_expectation(task_ids, latencies: Sequence[float], weights: dict | None = None) -> dict[str, float]:
    """What a random ranking scores in expectation on these rows: PCA 0.5 and top-k with each
    task's expected best latency of k programs drawn without replacement (exact order
    statistics: the i-th fastest of n is the best of the k with probability C(n-i, k-1)/C(n, k)).
    The floor a served model must clear."""
    latencies = np.asarray(latencies, dtype=np.float64)
    num, den = 0.0, {1: 0.0, 5: 0.0}
    for t, ix in task_groups(task_ids):
        lat = np.sort(latencies[ix])
        n = len(lat)
        w = float(weights.get(t, 1.0)) if weights else 1.0
        num += w * lat[0]
        for k in den:
            kk = min(k, n)
            p = np.array([comb(n - i, kk - 1) for i in range(1, n + 1)], dtype=np.float64) / comb(n, kk)
            den[k] += w * float(p @ lat)
    return {"pca": 0.5, "top1": num / den[1] if den[1] else float("nan"), "top5": num / den[5] if den[5] else float("nan")}
