"""Pruning strategies on small real data: 6 tasks of the bundled Sapphire Rapids records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from tensorcost import pruning
from tensorcost import records as rec
from tensorcost.errors import UserError
from tensorcost.features import FeatureTable, featurize_table
from tensorcost.hardware.catalog import HARDWARE_FEATURE_NAMES, catalog_target

REPO = Path(__file__).resolve().parents[2]
SLOT = "sapphirerapids-2c.avx2-t1"
SMALL_ATTENTION = {"d_model": 16, "n_heads": 2, "epochs": 2, "programs_per_group": 16, "groups_per_batch": 4, "threads": 1}


@pytest.fixture(scope="module")
def records():
    table = rec.read_records(REPO / "data/bundled/platforms/sapphirerapids-2c/avx2-t1.parquet")
    tasks = sorted(set(table.column("task_id").to_pylist()))[:6]
    return table.filter(pc.is_in(table.column("task_id"), value_set=__import__("pyarrow").array(tasks)))


@pytest.fixture(scope="module")
def pool(records) -> FeatureTable:
    frame = featurize_table(records, catalog_target(SLOT).features(), HARDWARE_FEATURE_NAMES, slot=SLOT)
    return FeatureTable(frame, SLOT)


@pytest.fixture(scope="module")
def scout(pool):
    return pruning.Scout(params=SMALL_ATTENTION, ensemble_params={"num_boost_round": 20})


def _per_task(pool: FeatureTable, ids) -> dict[str, int]:
    kept = pool.frame[pool.frame["record_id"].isin(set(ids))]
    return kept.groupby("task_id").size().to_dict()


@pytest.mark.parametrize("strategy", pruning.STRATEGIES)
def test_every_strategy_keeps_a_deterministic_subset_of_the_budget(strategy, pool, scout):
    ids = pruning.prune(strategy, pool, 0.2, seed=0, scout=scout)
    assert len(ids) == len(set(ids)) and set(ids) <= set(pool.frame["record_id"])
    assert ids == pruning.prune(strategy, pool, 0.2, seed=0, scout=scout)
    sizes = pool.frame.groupby("task_id").size().to_dict()
    counts = _per_task(pool, ids)
    if strategy == "random_tasks":  # whole tasks: every kept task keeps all its programs
        assert len(counts) == round(0.2 * len(sizes)) and all(counts[t] == sizes[t] for t in counts)
    else:  # programs per task: every task keeps its budget
        assert counts == {t: pruning.per_task_budget(n, 0.2) for t, n in sizes.items()}


def test_random_seeds_differ_and_smaller_budgets_keep_less(pool):
    a, b = pruning.prune("random", pool, 0.2, seed=0), pruning.prune("random", pool, 0.2, seed=1)
    assert a != b
    assert len(pruning.prune("random", pool, 0.05, seed=0)) < len(a) < len(pruning.prune("random", pool, 0.5, seed=0))


def test_full_fraction_keeps_everything_and_bad_arguments_say_what_is_valid(pool):
    assert pruning.prune("kcenter", pool, 1.0) == pool.frame["record_id"].tolist()
    with pytest.raises(UserError, match="unknown pruning strategy 'topk'; valid: random, random_tasks"):
        pruning.prune("topk", pool, 0.2)
    with pytest.raises(UserError, match=r"pruning fraction 1.5 is not in \(0, 1\]"):
        pruning.prune("random", pool, 1.5)
    with pytest.raises(UserError, match="needs a scout"):
        pruning.prune("kcenter", pool, 0.2)
    with pytest.raises(UserError, match="nothing to prune"):
        pruning.prune("random", pool.take([]), 0.2)


def test_budget_keeps_a_pair_per_task():
    assert pruning.per_task_budget(100, 0.05) == 5 and pruning.per_task_budget(10, 0.05) == 2 and pruning.per_task_budget(1, 0.5) == 1


def test_kcenter_greedy_covers_every_cluster():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    x = np.concatenate([c + rng.normal(0, 0.1, (25, 2)) for c in centers])
    chosen = pruning.kcenter_greedy(x, 4)
    assert sorted(i // 25 for i in chosen) == [0, 1, 2, 3]


def test_pair_losses_are_small_where_the_ranking_is_right():
    latency = np.array([1.0, 2.0, 3.0, 4.0])
    labels = latency.min() / latency
    right, wrong = pruning.pair_losses(-latency * 10, labels), pruning.pair_losses(latency * 10, labels)
    assert (right < 0.01).all() and (wrong > 1.0).all()
    mixed = pruning.pair_losses(np.array([4.0, 3.0, 1.0, 2.0]), labels)  # the last two swapped
    assert mixed[2] > mixed[0] and mixed[3] > mixed[1]


def test_uncertainty_never_reads_labels_it_did_not_keep(pool, scout):
    ids = pruning.prune("uncertainty", pool, 0.2, seed=0, scout=scout)
    kept = pool.frame["record_id"].isin(set(ids)).to_numpy()
    scrambled = pool.frame.copy()
    rng = np.random.default_rng(7)
    scrambled.loc[~kept, "latency_s"] = rng.permutation(scrambled.loc[~kept, "latency_s"].to_numpy()) * 3.0
    scrambled["label"] = rng.random(len(scrambled))  # the precomputed labels: not what a strategy may read
    assert pruning.prune("uncertainty", pool.with_frame(scrambled), 0.2, seed=0, scout=scout) == ids


def test_kept_table_labels_from_the_kept_rows_alone(pool):
    best_rows = pool.frame.groupby("task_id")["latency_s"].idxmin().to_numpy()
    others = np.setdiff1d(np.arange(len(pool)), best_rows)[:50]
    kept = pruning.kept_table(pool, others)
    assert np.isclose(kept.frame.groupby("task_id")["label"].max(), 1.0).all()  # each task's best *kept* program is 1


def test_variant_records_keep_the_chosen_measured_rows_in_order(records):
    ids = records.column("record_id").to_pylist()
    chosen = set(ids[::3])
    out = pruning.variant_records(records, chosen)
    errors = set(pc.filter(records.column("record_id"), pc.not_equal(records.column("error_no"), 0)).to_pylist())
    assert out.column("record_id").to_pylist() == [i for i in ids if i in chosen and i not in errors]


def test_summary_finds_the_largest_pruning_within_a_point_and_compares_with_random_spread():
    rows = [{"strategy": "full", "model": "m", "split": "s", "test_slot": "t", "kept_fraction": 1.0, "seed": 0, "pca": 0.80, "top5": 0.9, "train_seconds": 1}]
    for seed, pca in enumerate((0.70, 0.72, 0.74)):
        rows.append({"strategy": "random", "model": "m", "split": "s", "test_slot": "t", "kept_fraction": 0.2, "seed": seed, "pca": pca, "top5": 0.8, "train_seconds": 1})
    for f, pca in ((0.5, 0.795), (0.2, 0.792), (0.1, 0.75)):
        rows.append({"strategy": "kcenter", "model": "m", "split": "s", "test_slot": "t", "kept_fraction": f, "seed": 0, "pca": pca, "top5": 0.8, "train_seconds": 1})
    by = {s["strategy"]: s for s in pruning.summarize(rows)}
    assert by["kcenter"]["within_1pt_min_fraction"] == 0.2 and by["random"]["within_1pt_min_fraction"] is None
    assert by["random"]["by_fraction"]["0.2"]["spread"] == pytest.approx(0.04)
    assert by["kcenter"]["beats_random"] == {"0.1": False, "0.2": True, "0.5": False}


@pytest.mark.parametrize("strategy", pruning.STRATEGIES)
def test_every_strategy_prunes_a_store_view_as_it_prunes_the_table(strategy, pool, scout, tmp_path):
    """The prune stage hands strategies a store view (metadata whole, numbers a fragment at a
    time): the same record ids as the table in memory."""
    from tensorcost.features import write_feature_store
    from tensorcost.features.store import StoreView

    write_feature_store(pool, tmp_path, SLOT, rows_per_fragment=150)  # several fragments
    view = StoreView(tmp_path, SLOT)
    assert len(view.paths) > 1
    table = view.materialize()  # the same rows in the store's order (strategies sample per task in row order)
    fresh = pruning.Scout(params=scout.params, ensemble_params=scout.ensemble_params)
    assert pruning.prune(strategy, view, 0.2, seed=0, scout=fresh) == pruning.prune(strategy, table, 0.2, seed=0, scout=scout)


def test_a_relabelled_view_trains_on_its_own_labels(pool, tmp_path):
    """A pruned variant's training side is a view relabelled from its kept rows: learners that
    read its fragments see those labels, not the store's."""
    from tensorcost.features import write_feature_store
    from tensorcost.features.store import StoreView

    write_feature_store(pool, tmp_path, SLOT, rows_per_fragment=150)
    view = StoreView(tmp_path, SLOT)
    kept = pruning.kept_table(view, np.arange(0, len(view), 3))
    parts = list(kept.iter_tables())
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), kept.labels)
    assert not np.array_equal(kept.labels, view.take(np.arange(0, len(view), 3)).labels)


def test_variant_records_written_a_batch_at_a_time_equal_the_in_memory_variant(records, tmp_path):
    src = tmp_path / "records.parquet"
    rec.write_records(records, src)
    chosen = set(records.column("record_id").to_pylist()[::4])
    n = pruning.write_variant_records(src, chosen, tmp_path / "variant.parquet", batch_rows=100)
    got = rec.read_records(tmp_path / "variant.parquet")
    want = pruning.variant_records(records, chosen)
    assert n == got.num_rows == want.num_rows and got.column("record_id").to_pylist() == want.column("record_id").to_pylist()
