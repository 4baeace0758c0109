"""The columnar feature store: identical features to the in-memory featurizer, fragments of whole
tasks, parallel and resumable featurizing, and learners that read it a fragment at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tensorcost.evaluation import ModelSpec
from tensorcost.features import (FeatureTable, featurize_records, fragment_paths, iter_groups, load_feature_table, read_meta, store_hash,
                                 tokenize_trace, write_feature_store)
from tensorcost.features.build import featurize_file, plan_work, read_rows
from tensorcost.features.store import StoreView
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.metrics import pairwise_comparison_accuracy

SLOT = "zen5-2c.avx2-t1"
RECORDS = Path(__file__).resolve().parents[2] / "data/bundled/platforms/zen5-2c/avx2-t1.parquet"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """The first 12 tasks of a bundled platform (about 1,200 real programs), with one error record."""
    table = pq.read_table(RECORDS)
    tasks = table.column("task_id").to_numpy(zero_copy_only=False)
    keep = np.isin(tasks, list(dict.fromkeys(tasks))[:12])
    path = tmp_path_factory.mktemp("records") / "records.parquet"
    pq.write_table(table.filter(keep), path, row_group_size=300)  # row groups that cut tasks: reads must stitch them
    return path


@pytest.fixture(scope="module")
def in_memory(records):
    return featurize_records(pq.read_table(records), catalog_target(SLOT).features(), HARDWARE_FEATURE_NAMES, slot=SLOT)


def _by_record(table: FeatureTable):
    order = np.argsort(table.frame["record_id"].to_numpy())
    return table.take(order)


def test_compact_tokens_rebuild_the_dense_matrix_exactly(in_memory, records):
    traces = pq.read_table(records, columns=["trace", "error_no"]).to_pandas()
    traces = traces[traces["error_no"] == 0]["trace"].tolist()
    for i in (0, 7, len(traces) - 1):
        dense, _ = tokenize_trace(traces[i])
        np.testing.assert_array_equal(in_memory.tokens(i), dense)
    batch, lengths = in_memory.take([0, 7]).dense_tokens(16)
    np.testing.assert_array_equal(batch[0, : min(16, lengths[0])], tokenize_trace(traces[0])[0][:16])


def test_parallel_resumable_store_equals_the_in_memory_features(tmp_path, records, in_memory):
    hw = catalog_target(SLOT).features()
    writer = featurize_file(records, tmp_path, SLOT, hw, HARDWARE_FEATURE_NAMES, workers=2, rows_per_fragment=250, progress=False)
    frags = sorted(writer.partial.glob("part-*.parquet"))
    assert len(frags) >= 4
    # a killed run: one fragment lost, another cut short (a .tmp); the re-run redoes only those
    kept_mtime = frags[0].stat().st_mtime_ns
    frags[-1].unlink()
    (writer.partial / "part-00001.parquet.tmp").write_bytes(b"half a fragment")
    writer = featurize_file(records, tmp_path, SLOT, hw, HARDWARE_FEATURE_NAMES, workers=2, rows_per_fragment=250, progress=False)
    assert frags[0].stat().st_mtime_ns == kept_mtime and not list(writer.partial.glob("*.tmp"))
    meta = writer.commit({"feature_names": in_memory.feature_names, "target": SLOT})
    assert not writer.partial.exists() and meta["valid_records"] == len(in_memory) and meta["fragments"] == len(frags)
    back, _ = load_feature_table(tmp_path, SLOT)
    a, b = _by_record(back), _by_record(in_memory)
    np.testing.assert_array_equal(a.flat, b.flat)  # bit for bit
    np.testing.assert_array_equal(a.token_rows, b.token_rows)
    np.testing.assert_array_equal(a.token_offsets, b.token_offsets)
    np.testing.assert_array_equal(a.labels, b.labels)
    # every fragment holds whole tasks, one Parquet row group a task
    seen = set()
    for f in fragment_paths(tmp_path, SLOT):
        tasks = pq.read_table(f, columns=["task_id"]).column("task_id").to_pylist()
        assert not seen & set(tasks)
        seen |= set(tasks)
        pf = pq.ParquetFile(f)
        per_row_group = [set(pf.read_row_group(i, columns=["task_id"]).column("task_id").to_pylist()) for i in range(pf.metadata.num_row_groups)]
        assert sum(len(t) for t in per_row_group) == len(set(tasks))  # no task cut between row groups
    groups = list(iter_groups(tmp_path, SLOT))
    assert len(groups) == len(seen) and all(g.frame["task_id"].nunique() == 1 for g in groups)


def test_a_changed_records_file_starts_the_partial_store_afresh(tmp_path, records):
    hw = catalog_target(SLOT).features()
    writer = featurize_file(records, tmp_path, SLOT, hw, HARDWARE_FEATURE_NAMES, workers=1, rows_per_fragment=250, progress=False)
    stale = writer.partial / "part-00099.parquet"
    stale.write_bytes(b"another run's fragment")
    featurize_file(records, tmp_path, SLOT, [x + 1.0 for x in hw], HARDWARE_FEATURE_NAMES, workers=1, rows_per_fragment=250, progress=False)
    assert not stale.exists()  # another plan (other hardware): nothing of the old run is kept


def test_work_items_hold_whole_tasks_and_reads_stitch_row_groups(records):
    tasks = pq.read_table(records, columns=["task_id"]).column("task_id").to_numpy(zero_copy_only=False)
    items = plan_work(tasks, 250)
    assert all(len(sb) >= 1 for it in items for sb in it.sub_batches(100))
    rows = np.concatenate([it.rows for it in items])
    assert sorted(rows.tolist()) == list(range(len(tasks)))
    for it in items:
        mine = set(tasks[it.rows])
        assert all(set(tasks[other.rows]).isdisjoint(mine) for other in items if other.index != it.index)
        got = read_rows(records, it.rows, ["record_id"]).column("record_id").to_pylist()
        assert got == pq.read_table(records, columns=["record_id"]).column("record_id").to_numpy(zero_copy_only=False)[it.rows].tolist()


@pytest.mark.parametrize("objective", ["regression", "lambdarank"])
def test_lightgbm_from_fragments_equals_lightgbm_from_memory(tmp_path, in_memory, objective):
    write_feature_store(in_memory, tmp_path, SLOT, rows_per_fragment=300)
    view = StoreView(tmp_path, SLOT)
    memory = view.materialize()
    test = memory.frame["task_id"].isin(sorted(set(memory.frame["task_id"]))[::4]).to_numpy()
    spec = ModelSpec("lightgbm", {"objective": objective, "num_boost_round": 30, "num_threads": 1, "group_relative": True})
    a = spec.create(memory)
    a.fit(memory.take(np.flatnonzero(~test)))
    b = spec.create(memory)
    b.fit(view.take(np.flatnonzero(~test)))  # binned through lightgbm.Sequence, a fragment at a time
    te_m, te_v = memory.take(np.flatnonzero(test)), view.take(np.flatnonzero(test))
    pa_ = pairwise_comparison_accuracy(te_m.frame["task_id"], a.predict(te_m), te_m.frame["latency_s"])
    pb = pairwise_comparison_accuracy(te_v.frame["task_id"], b.predict(te_v), te_v.frame["latency_s"])
    assert pa_ > 0.6 and abs(pa_ - pb) < 1e-9


@pytest.mark.parametrize("objective", ["regression", "lambdarank"])
def test_a_lightgbm_warm_start_from_fragments_equals_one_from_memory_and_reads_a_fragment_at_a_time(tmp_path, in_memory, objective, monkeypatch):
    """Fine-tuning (transfer's k% of a new machine) from a store view: the initial scores are
    read a fragment at a time and the new trees stacked after the source's, as LightGBM's own
    warm start does from memory."""
    write_feature_store(in_memory, tmp_path, SLOT, rows_per_fragment=300)
    view = StoreView(tmp_path, SLOT)
    memory = view.materialize()
    tasks = sorted(set(memory.frame["task_id"]))
    source_rows = np.flatnonzero(memory.frame["task_id"].isin(tasks[:6]).to_numpy())
    tune_rows = np.flatnonzero(memory.frame["task_id"].isin(tasks[6:10]).to_numpy())
    spec = ModelSpec("lightgbm", {"objective": objective, "num_boost_round": 20, "finetune_rounds": 7, "num_threads": 1, "group_relative": True})
    source = spec.create(memory)
    source.fit(memory.take(source_rows))
    a, b = copy.deepcopy(source), copy.deepcopy(source)
    a.fit(memory.take(tune_rows), warm_start=True)
    read: list[int] = []
    whole = StoreView.materialize
    monkeypatch.setattr(StoreView, "materialize", lambda self, *args, **kw: read.append(len(self)) or whole(self, *args, **kw))
    b.fit(view.take(tune_rows), warm_start=True)
    largest = np.unique(np.asarray(view.fragment), return_counts=True)[1].max()  # fragments hold whole tasks: ~300 rows
    assert read and max(read) <= largest < len(tune_rows)  # never the fine-tuning side whole
    assert a.booster.num_trees() == b.booster.num_trees() == source.booster.num_trees() + 7
    monkeypatch.undo()
    test = memory.take(np.flatnonzero(memory.frame["task_id"].isin(tasks[10:]).to_numpy()))
    np.testing.assert_allclose(b.predict(test), a.predict(test), rtol=0, atol=1e-9)
    assert np.abs(a.predict(test) - source.predict(test)).max() > 1e-6  # the new trees changed the scores
    b.save(tmp_path / "tuned")  # the stacked model is a LightGBM text model like any other: checked and loaded
    np.testing.assert_array_equal(type(b).load(tmp_path / "tuned").predict(test), b.predict(test))


def test_a_joint_model_reads_metaschedule_features_a_fragment_at_a_time(tmp_path, in_memory, monkeypatch):
    """`lightgbm_joint` (flat and MetaSchedule features) from a store view trains and scores as from
    memory, and never holds the view whole: each fragment's Sequence reads that fragment's rows of
    the msfeatures files. (The matrices are random, keyed by the real records' ids: this is the
    data path, not the features' worth.)"""
    from tensorcost.evaluation import fit, predict
    from tensorcost.features.metaschedule import MS_FEATURE_DIM, _open_reader, save_ms_features

    write_feature_store(in_memory, tmp_path, SLOT, rows_per_fragment=300)
    view = StoreView(tmp_path, SLOT)
    ids = view.frame["record_id"].astype(str).tolist()
    rng = np.random.default_rng(0)
    save_ms_features(tmp_path, SLOT, ids, [rng.normal(size=(int(k), MS_FEATURE_DIM)).astype(np.float32) for k in rng.integers(1, 5, size=len(ids))])
    _open_reader.cache_clear()
    memory = view.materialize(("flat", "ms_features"))
    assert memory.ms_features is not None and len(memory.ms_features) == len(memory)
    test = memory.frame["task_id"].isin(sorted(set(memory.frame["task_id"]))[::4]).to_numpy()
    spec = ModelSpec("lightgbm_joint", {"objective": "regression", "num_boost_round": 30, "num_threads": 1})
    a, _ = fit(spec, memory.take(np.flatnonzero(~test)))
    read: list[int] = []
    whole = StoreView.materialize
    monkeypatch.setattr(StoreView, "materialize", lambda self, *args, **kw: read.append(len(self)) or whole(self, *args, **kw))
    b, _ = fit(spec, view.take(np.flatnonzero(~test)))
    from_view = predict(b, view.take(np.flatnonzero(test)))
    largest = np.unique(np.asarray(view.fragment), return_counts=True)[1].max()
    assert read and max(read) <= largest < int((~test).sum())  # never the training side whole
    assert _open_reader.cache_info().misses == 1  # the features' index read once, not once a fragment
    monkeypatch.undo()
    np.testing.assert_allclose(from_view, predict(a, memory.take(np.flatnonzero(test))), rtol=0, atol=1e-9)


def test_the_store_hash_names_its_content(tmp_path, in_memory):
    write_feature_store(in_memory, tmp_path, SLOT)
    h = store_hash(tmp_path, SLOT)
    meta = read_meta(tmp_path, SLOT)
    assert meta["valid_records"] == len(in_memory) and json.loads((tmp_path / SLOT / "meta.json").read_text())["fragments"] == 1
    frag = fragment_paths(tmp_path, SLOT)[0]
    frag.write_bytes(frag.read_bytes() + b"x")
    assert store_hash(tmp_path, SLOT) != h


def test_a_records_file_rewritten_at_the_same_path_is_read_anew(tmp_path, records):
    path = tmp_path / "r.parquet"
    table = pq.read_table(records)
    pq.write_table(table.slice(0, 10), path)
    first = read_rows(path, np.arange(10), ["record_id"]).column("record_id").to_pylist()
    pq.write_table(table.slice(10, 10), path)  # another run's file under the same name
    again = read_rows(path, np.arange(10), ["record_id"]).column("record_id").to_pylist()
    assert again == table.column("record_id").to_pylist()[10:20] and again != first


def test_the_table_carries_its_schema_and_names_through_the_store(tmp_path, in_memory):
    """What the numbers mean travels with them: a model made from a store view, a fragment or a
    slice records the store's schema and names, with nothing passed beside the table."""
    from tensorcost.features import FEATURE_SCHEMA_VERSION

    assert in_memory.feature_schema == FEATURE_SCHEMA_VERSION and in_memory.feature_names
    write_feature_store(in_memory, tmp_path, SLOT, rows_per_fragment=300)
    meta_file = tmp_path / SLOT / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["feature_schema"] = "tc-feat-older"  # a store featurized by another version of the code
    meta_file.write_text(json.dumps(meta))
    view = StoreView(tmp_path, SLOT)
    table, _ = load_feature_table(tmp_path, SLOT)
    part = next(iter(view.iter_tables()))
    for t in (view, view.take(np.arange(5)), view.materialize(), table, table.take(np.arange(5)), part):
        assert t.feature_schema == "tc-feat-older" and t.feature_names == in_memory.feature_names
    model = ModelSpec("lightgbm", {"num_boost_round": 5, "num_threads": 1}).create(view)
    assert model.metadata.feature_schema == "tc-feat-older" and model.metadata.feature_names == in_memory.feature_names
    with pytest.raises(ValueError, match="different feature schemas"):
        FeatureTable.concat([table.take(np.arange(3)), in_memory.take(np.arange(3))], "pooled")
    with pytest.raises(ValueError, match="different feature schemas"):
        write_feature_store(in_memory, tmp_path / "other", SLOT, rows_per_fragment=300)
        StoreView.concat([view, StoreView(tmp_path / "other", SLOT)], "pooled")
