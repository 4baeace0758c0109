"""Ranking metrics on small cases whose expected values are computed by hand in the comments.

Convention: score higher = predicted faster; latency lower = faster.
"""

from __future__ import annotations

import math

import pytest

from tensorcost.metrics import RankingReport, pairwise_comparison_accuracy, pairwise_counts, ranking_report, top_k_score


# ----------------------------------------------------------------------------- pairwise accuracy


def test_pca_perfect_order_is_one():
    # latencies 1 < 2 < 3, scores 3 > 2 > 1: all 3 pairs ordered right -> 3/3.
    assert pairwise_comparison_accuracy(["t"] * 3, [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]) == 1.0


def test_pca_reversed_order_is_zero():
    # scores rank the slowest first: all 3 pairs wrong -> 0/3.
    assert pairwise_comparison_accuracy(["t"] * 3, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0


def test_pca_three_programs_one_wrong_pair():
    # lat = [1, 2, 3], s = [3, 1, 2]
    # (0,1): 0 faster, s0=3 > s1=1  right
    # (0,2): 0 faster, s0=3 > s2=2  right
    # (1,2): 1 faster, s1=1 < s2=2  wrong      -> 2/3
    assert pairwise_comparison_accuracy(["t"] * 3, [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(2 / 3)


def test_pca_tied_prediction_counts_half():
    # two programs with different latency, identical score: 0.5 of 1 pair.
    assert pairwise_comparison_accuracy(["t", "t"], [5.0, 5.0], [1.0, 2.0]) == pytest.approx(0.5)
    # lat = [1, 2, 3], s = [2, 2, 1]
    # (0,1): score tie -> 0.5; (0,2): right -> 1; (1,2): right -> 1   => 2.5 / 3
    assert pairwise_comparison_accuracy(["t"] * 3, [2.0, 2.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(2.5 / 3)
    assert pairwise_counts([2.0, 2.0, 1.0], [1.0, 2.0, 3.0]) == (2.5, 3)


def test_pca_tied_latency_pairs_are_excluded():
    # lat = [1, 1, 2], s = [1, 2, 0]
    # (0,1): same latency -> not comparable (even though scores differ)
    # (0,2): 0 faster, s0=1 > s2=0 right; (1,2): 1 faster, s1=2 > s2=0 right   => 2 / 2
    assert pairwise_counts([1.0, 2.0, 0.0], [1.0, 1.0, 2.0]) == (2.0, 2)
    assert pairwise_comparison_accuracy(["t"] * 3, [1.0, 2.0, 0.0], [1.0, 1.0, 2.0]) == 1.0
    # a tie in both latency and score must not count half either: only (0,2) and (1,2) count.
    # lat = [1, 1, 2], s = [1, 1, 0]: (0,1) excluded, the other two right -> (2.0, 2)
    assert pairwise_counts([1.0, 1.0, 0.0], [1.0, 1.0, 2.0]) == (2.0, 2)


def test_pca_without_comparable_pairs_is_nan():
    # every latency equal: 0 comparable pairs -> nan, not a division error.
    assert math.isnan(pairwise_comparison_accuracy(["t"] * 3, [1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))


def test_pca_weights_tasks_by_their_pair_counts():
    # task A: 2 programs, 1 pair, ordered wrong          -> 0 of 1
    # task B: 4 programs, 6 pairs, all ordered right     -> 6 of 6
    # pooled: (0 + 6) / (1 + 6) = 6/7 (a plain mean of per-task PCA would give 0.5)
    # rows are interleaved so grouping must follow the ids, not positions.
    tasks = ["A", "B", "B", "A", "B", "B"]
    lat = [1.0, 1.0, 2.0, 2.0, 3.0, 4.0]
    scores = [0.0, 4.0, 3.0, 1.0, 2.0, 1.0]
    assert pairwise_comparison_accuracy(tasks, scores, lat) == pytest.approx(6 / 7)


def test_pca_does_not_compare_across_tasks():
    # Each task alone is perfectly ordered; cross-task pairs (which would be wrong) must be ignored.
    # A: lat [1, 2], s [10, 9] right; B: lat [0.1, 0.2], s [2, 1] right -> 2/2
    assert pairwise_comparison_accuracy(["A", "A", "B", "B"], [10.0, 9.0, 2.0, 1.0], [1.0, 2.0, 0.1, 0.2]) == 1.0


# ----------------------------------------------------------------------------- top-k


def test_top1_picks_the_best_predicted_program():
    # lat = [4, 1, 2], s = [0.1, 0.5, 0.9]: best predicted is index 2 (lat 2); true best lat 1 -> 1/2
    assert top_k_score(["t"] * 3, [0.1, 0.5, 0.9], [4.0, 1.0, 2.0], k=1) == pytest.approx(0.5)
    # k=2 takes indices 2 and 1 -> min latency 1 -> 1/1
    assert top_k_score(["t"] * 3, [0.1, 0.5, 0.9], [4.0, 1.0, 2.0], k=2) == pytest.approx(1.0)


def test_top_k_weights_per_task():
    # A: lat [1, 2], s [0, 1] -> chosen lat 2, best 1
    # B: lat [3, 6], s [1, 0] -> chosen lat 3, best 3
    tasks, s, lat = ["A", "A", "B", "B"], [0.0, 1.0, 1.0, 0.0], [1.0, 2.0, 3.0, 6.0]
    # unweighted: (1 + 3) / (2 + 3) = 4/5
    assert top_k_score(tasks, s, lat, k=1) == pytest.approx(4 / 5)
    # w = {A: 3, B: 1}: (3*1 + 1*3) / (3*2 + 1*3) = 6/9
    assert top_k_score(tasks, s, lat, k=1, weights={"A": 3, "B": 1}) == pytest.approx(6 / 9)
    # w = {A: 1, B: 3}: (1*1 + 3*3) / (1*2 + 3*3) = 10/11
    assert top_k_score(tasks, s, lat, k=1, weights={"A": 1, "B": 3}) == pytest.approx(10 / 11)
    # a task missing from weights gets weight 1: {A: 3} equals {A: 3, B: 1}
    assert top_k_score(tasks, s, lat, k=1, weights={"A": 3}) == pytest.approx(6 / 9)


def test_top_k_larger_than_task_size_covers_the_whole_task():
    # k=10 with tasks of 2 and 3 programs: the best program of each task is always included -> 1.0
    tasks = ["A", "A", "B", "B", "B"]
    s = [0.0, 1.0, 3.0, 2.0, 1.0]  # worst possible ranking inside each task
    lat = [1.0, 2.0, 1.0, 2.0, 3.0]
    assert top_k_score(tasks, s, lat, k=10) == pytest.approx(1.0)
    # sanity: with k=1 the same ranking is bad: A picks lat 2 (best 1), B picks lat 1 (best 1)
    # -> (1 + 1) / (2 + 1) = 2/3
    assert top_k_score(tasks, s, lat, k=1) == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- report


def test_ranking_report_fields():
    # A: lat [1, 2, 3], s [3, 1, 2] -> pairs: 2 of 3 right; top1 picks lat 1 -> 1/1
    # B: lat [2, 4],    s [0, 1]    -> pairs: 0 of 1 right; top1 picks lat 4 (best 2)
    # pca = (2 + 0) / (3 + 1) = 0.5
    # top1 = (1 + 2) / (1 + 4) = 3/5 ; top5 covers every program -> (1 + 2) / (1 + 2) = 1
    tasks = ["A", "A", "A", "B", "B"]
    s = [3.0, 1.0, 2.0, 0.0, 1.0]
    lat = [1.0, 2.0, 3.0, 2.0, 4.0]
    rep = ranking_report(tasks, s, lat)
    assert isinstance(rep, RankingReport)
    assert rep.pca == pytest.approx(0.5)
    assert rep.top1 == pytest.approx(3 / 5)
    assert rep.top5 == pytest.approx(1.0)
    assert rep.n_tasks == 2
    assert rep.n_records == 5
    d = rep.to_dict()
    assert set(d) == {"pca", "top1", "top5", "n_tasks", "n_records"}
    assert d["pca"] == rep.pca and d["n_records"] == 5


def test_ranking_report_passes_weights_to_top_k():
    # same data as above, weights {A: 1, B: 4}: top1 = (1*1 + 4*2) / (1*1 + 4*4) = 9/17
    tasks = ["A", "A", "A", "B", "B"]
    s = [3.0, 1.0, 2.0, 0.0, 1.0]
    lat = [1.0, 2.0, 3.0, 2.0, 4.0]
    rep = ranking_report(tasks, s, lat, weights={"A": 1, "B": 4})
    assert rep.top1 == pytest.approx(9 / 17)
    assert rep.pca == pytest.approx(0.5)  # PCA is not task-weighted


def test_peak_score_is_tensets_area_under_the_best_so_far_curve():
    from tensorcost.metrics import peak_score, top_k_score

    # one task, latencies 1, 2, 4 ms; the model measures them slowest first
    ids, lat, worst_first = ["t"] * 3, [1.0, 2.0, 4.0], [0.0, 1.0, 2.0]
    assert peak_score(ids, worst_first, lat, 1) == pytest.approx(0.25)
    assert peak_score(ids, worst_first, lat, 3) == pytest.approx((0.25 + 0.5 + 1.0) / 3)
    assert peak_score(ids, [-x for x in worst_first], lat, 3) == pytest.approx(1.0)
    assert top_k_score(ids, worst_first, lat, 3) == pytest.approx(1.0)  # top-k looks only at k: the two differ
    # tasks averaged unweighted: a perfect task and the task above
    ids2 = ["a", "a", "b", "b", "b"]
    assert peak_score(ids2, [1.0, 0.0] + worst_first, [1.0, 2.0] + lat, 3) == pytest.approx((1.0 + (0.25 + 0.5 + 1.0) / 3) / 2)
