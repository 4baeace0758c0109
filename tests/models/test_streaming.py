"""The attention model's stream over a feature store: every chunk of every task once an epoch,
each chunk from one task, seeded; statistics equal to the whole table's."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")

from tensorcost.features import featurize_records, write_feature_store
from tensorcost.features.store import StoreView
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.models.streaming import GroupChunkStream, running_stats

SLOT = "zen5-2c.avx2-t1"
RECORDS = Path(__file__).resolve().parents[2] / "data/bundled/platforms/zen5-2c/avx2-t1.parquet"


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    table = pq.read_table(RECORDS)
    tasks = table.column("task_id").to_numpy(zero_copy_only=False)
    table = table.filter(np.isin(tasks, list(dict.fromkeys(tasks))[:10]))
    d = tmp_path_factory.mktemp("store")
    write_feature_store(featurize_records(table, catalog_target(SLOT).features(), HARDWARE_FEATURE_NAMES, slot=SLOT), d, SLOT, rows_per_fragment=250)
    return StoreView(d, SLOT)


def _epoch(view, epoch, **kw):
    from tensorcost.features import FeatureTable

    stream = GroupChunkStream(view, programs_per_group=16, groups_per_batch=4, buffer_chunks=8, seed=3, epoch=epoch, **kw)
    steps = []
    for picked in stream:
        t = FeatureTable.concat([table.take(rows) for table, rows in picked], view.slot)
        steps.append((list(t.frame["record_id"]), [len(rows) for _, rows in picked], t))
    return steps


def test_an_epoch_streams_every_program_once_in_chunks_of_one_task(view):
    steps = _epoch(view, 0)
    ids = [r for s in steps for r in s[0]]
    singles = sum(1 for _, rows in view.materialize().iter_groups() if len(rows) % 16 == 1)  # a lone last program has no pair
    assert len(ids) == len(set(ids)) == len(view) - singles
    for _, sizes, table in steps:
        assert len(sizes) <= 4 and sum(sizes) == len(table)
        cuts = np.cumsum([0] + sizes)
        for a, b in zip(cuts[:-1], cuts[1:]):
            assert table.frame["task_id"].iloc[a:b].nunique() == 1 and b - a <= 16
        assert table.dense_tokens(8)[0].shape == (len(table), 8, 73)  # the model's token input, built per step


def test_the_stream_is_seeded_and_ranks_share_the_groups(view):
    assert [s[0] for s in _epoch(view, 1)] == [s[0] for s in _epoch(view, 1)]
    assert [s[0] for s in _epoch(view, 1)] != [s[0] for s in _epoch(view, 2)]
    a = {r for s in _epoch(view, 0, rank=0, world=2) for r in s[0]}
    b = {r for s in _epoch(view, 0, rank=1, world=2) for r in s[0]}
    assert a and b and not a & b and len(a | b) == len({r for s in _epoch(view, 0) for r in s[0]})


def test_running_statistics_equal_the_whole_tables(view):
    mean, std = running_stats(view, slice(100, None))
    x = view.materialize().flat[:, 100:].astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-9, atol=1e-9)
    expected = x.std(0)
    np.testing.assert_allclose(std, np.where(expected > 1e-6, expected, 1.0), rtol=1e-7, atol=1e-9)


def test_the_attention_model_trains_from_the_store_as_well_as_from_memory(view):
    from tensorcost.metrics import pairwise_comparison_accuracy
    from tensorcost.models.attention import AttentionCostModel

    params = dict(d_model=16, n_heads=2, n_layers=1, max_len=32, epochs=4, programs_per_group=16, groups_per_batch=4, threads=1, group_relative=True,
                  stream_buffer_chunks=16)
    memory = view.materialize()
    a = AttentionCostModel.create(SLOT, "s", memory.feature_names, **params)
    a.fit(memory)
    b = AttentionCostModel.create(SLOT, "s", memory.feature_names, **params)
    curve = b.fit(view)["train_ranknet_loss"]  # streamed: a fragment at a time through the shuffle buffer
    assert curve[-1] < curve[0]
    pa_ = pairwise_comparison_accuracy(memory.frame["task_id"], a.predict(memory), memory.frame["latency_s"])
    pb = pairwise_comparison_accuracy(view.frame["task_id"], b.predict(view), view.frame["latency_s"])
    assert pb > 0.6 and abs(pa_ - pb) < 0.05


def test_a_view_the_shuffle_buffer_would_hold_whole_trains_exactly_as_in_memory(view):
    """Small slots (the bundled data, a host sample) read through a view train with the in-memory
    loop: the same losses and scores as the table itself, so `make run`'s figures do not move."""
    from tensorcost.models.attention import AttentionCostModel

    params = dict(d_model=16, n_heads=2, n_layers=1, max_len=32, epochs=2, programs_per_group=16, groups_per_batch=4, threads=1, stream_buffer_chunks=100_000)
    memory = view.materialize()
    a = AttentionCostModel.create(SLOT, "s", memory.feature_names, **params)
    b = AttentionCostModel.create(SLOT, "s", memory.feature_names, **params)
    assert a.fit(memory) == b.fit(view)
    np.testing.assert_array_equal(a.predict(memory), b.predict(view))


def test_ranks_share_a_one_fragment_store_evenly(view, tmp_path):
    """A slot's store is often one fragment: every rank still gets about 1/world of its tasks."""
    from tensorcost.models.streaming import shard

    write_feature_store(view.materialize(), tmp_path, SLOT, rows_per_fragment=10**6)
    one = StoreView(tmp_path, SLOT)
    assert len(one.paths) == 1
    tasks = [set(shard(one, r, 2).frame["task_id"].astype(str)) for r in range(2)]
    assert not tasks[0] & tasks[1] and len(tasks[0] | tasks[1]) == 10 and abs(len(tasks[0]) - len(tasks[1])) <= 1
