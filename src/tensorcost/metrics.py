"""Ranking metrics as the field defines them (TenSet, TLP). Pure NumPy.

Scores are "higher = predicted faster"; latencies are seconds (lower = faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _group_indices(task_ids: Sequence) -> dict:
    groups: dict = {}
    for i, t in enumerate(task_ids):
        groups.setdefault(t, []).append(i)
    return {t: np.asarray(ix) for t, ix in groups.items()}


def pairwise_counts(scores: np.ndarray, latencies: np.ndarray) -> tuple[float, int]:
    """(correctly ordered pairs, comparable pairs) for one task.

    A pair is comparable when the measured latencies differ; a tie in the prediction counts half.
    """
    s = np.asarray(scores, dtype=np.float64)
    lat = np.asarray(latencies, dtype=np.float64)
    iu, ju = np.triu_indices(len(lat), k=1)
    dl = lat[iu] - lat[ju]
    comparable = dl != 0
    ds = s[iu] - s[ju]
    # i faster than j (dl < 0) is predicted right when s_i > s_j.
    correct = ((dl < 0) & (ds > 0)) | ((dl > 0) & (ds < 0))
    ties = (ds == 0) & comparable
    return float(correct[comparable].sum() + 0.5 * ties.sum()), int(comparable.sum())


def pairwise_comparison_accuracy(task_ids: Sequence, scores: Sequence[float], latencies: Sequence[float]) -> float:
    """PCA over all pairs within each task, weighted by each task's number of comparable pairs."""
    scores = np.asarray(scores, dtype=np.float64)
    latencies = np.asarray(latencies, dtype=np.float64)
    good = total = 0.0
    for ix in _group_indices(task_ids).values():
        c, n = pairwise_counts(scores[ix], latencies[ix])
        good += c
        total += n
    return good / total if total else float("nan")


def top_k_score(
    task_ids: Sequence, scores: Sequence[float], latencies: Sequence[float], k: int, weights: dict | None = None
) -> float:
    """sum_t w_t * best_latency_t / sum_t w_t * min(latency of the k best-predicted programs of t)."""
    scores = np.asarray(scores, dtype=np.float64)
    latencies = np.asarray(latencies, dtype=np.float64)
    num = den = 0.0
    for t, ix in _group_indices(task_ids).items():
        w = float(weights.get(t, 1.0)) if weights else 1.0
        order = np.argsort(-scores[ix], kind="stable")[:k]
        num += w * latencies[ix].min()
        den += w * latencies[ix][order].min()
    return num / den if den else float("nan")


@dataclass(frozen=True)
class RankingReport:
    pca: float
    top1: float
    top5: float
    n_tasks: int
    n_records: int

    def to_dict(self) -> dict:
        return {"pca": float(self.pca), "top1": float(self.top1), "top5": float(self.top5), "n_tasks": int(self.n_tasks), "n_records": int(self.n_records)}


def ranking_report(task_ids: Sequence, scores: Sequence[float], latencies: Sequence[float], weights: dict | None = None) -> RankingReport:
    return RankingReport(
        pca=pairwise_comparison_accuracy(task_ids, scores, latencies),
        top1=top_k_score(task_ids, scores, latencies, 1, weights),
        top5=top_k_score(task_ids, scores, latencies, 5, weights),
        n_tasks=len(set(task_ids)),
        n_records=len(latencies),
    )
