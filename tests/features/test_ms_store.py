"""The MetaSchedule feature files (`<slot>.ms_index.parquet` + `<slot>.ms_rows.npy`): written a
batch at a time, read back by record id through a memory map."""

from __future__ import annotations

import numpy as np
import pytest

from tensorcost.errors import UserError
from tensorcost.features.metaschedule import MS_FEATURE_DIM, load_ms_features, save_ms_features, write_ms_features
from tensorcost.safeio import TMP_PREFIX


def _mats(n: int, seed: int) -> tuple[list[str], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ids = [f"r{seed}-{i}" for i in range(n)]
    # ragged: a record with no store, others with up to 5
    return ids, [rng.normal(size=(int(k), MS_FEATURE_DIM)).astype(np.float32) for k in rng.integers(0, 6, size=n)]


def test_batches_write_what_one_batch_writes(tmp_path):
    batches = [_mats(7, s) for s in range(4)]
    rows = write_ms_features(tmp_path / "a", "slot", iter(batches))
    ids = [r for b in batches for r in b[0]]
    mats = [m for b in batches for m in b[1]]
    assert rows == sum(len(m) for m in mats) > 0
    assert save_ms_features(tmp_path / "b", "slot", ids, mats) == rows
    assert (tmp_path / "a/slot.ms_rows.npy").read_bytes() == (tmp_path / "b/slot.ms_rows.npy").read_bytes()
    # asked in another order, a subset: each record's own matrix, copied out of the map
    ask = ids[::-3]
    got = load_ms_features(tmp_path / "a", "slot", ask)
    want = dict(zip(ids, mats))
    assert len(got) == len(ask)
    for r, m in zip(ask, got):
        np.testing.assert_array_equal(m, want[r])
        assert m.shape == (len(want[r]), MS_FEATURE_DIM) and m.flags.owndata
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(TMP_PREFIX)]  # the spool is gone


def test_spool_copies_in_steps(tmp_path, monkeypatch):
    import tensorcost.features.metaschedule as ms

    monkeypatch.setattr(ms, "COPY_ROWS", 3)  # many copy steps, a partial last one
    ids, mats = _mats(20, 9)
    write_ms_features(tmp_path, "s", [(ids[:11], mats[:11]), (ids[11:], mats[11:])])
    for m, want in zip(load_ms_features(tmp_path, "s", ids), mats):
        np.testing.assert_array_equal(m, want)


def test_no_batch_writes_an_empty_pair(tmp_path):
    assert write_ms_features(tmp_path, "s", []) == 0
    assert load_ms_features(tmp_path, "s", []) == []
    assert load_ms_features(tmp_path, "other", ["x"]) is None


def test_a_failed_batch_publishes_nothing_and_keeps_the_earlier_pair(tmp_path):
    ids, mats = _mats(5, 1)
    save_ms_features(tmp_path, "s", ids, mats)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def batches():
        yield _mats(4, 2)
        raise RuntimeError("TVM failed on a trace")

    with pytest.raises(RuntimeError, match="TVM failed"):
        write_ms_features(tmp_path, "s", batches())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no spool, no half pair


def test_mismatched_pair_and_unknown_record_are_named(tmp_path):
    ids, mats = _mats(6, 3)
    mats[0] = np.ones((2, MS_FEATURE_DIM), np.float32)
    save_ms_features(tmp_path, "s", ids, mats)
    with pytest.raises(UserError, match="no MetaSchedule features of 1 record.*nope"):
        load_ms_features(tmp_path, "s", [ids[0], "nope"])
    # the rows file of another write beside this index: refused, not misread
    save_ms_features(tmp_path / "other", "s", ids[:2], mats[:2])
    (tmp_path / "s.ms_rows.npy").write_bytes((tmp_path / "other/s.ms_rows.npy").read_bytes())
    with pytest.raises(UserError, match="s.ms_rows.npy.*cut short"):
        load_ms_features(tmp_path, "s", ids)
    with pytest.raises(ValueError, match="3 record ids for 2"):
        write_ms_features(tmp_path, "t", [(ids[:3], mats[:2])])


def test_a_records_file_in_batches_gets_what_one_extraction_gets(tmp_path, monkeypatch):
    """The msfeatures stage's path (real TVM): a records file read `BATCH_RECORDS` at a time, error
    records left out, each valid record's matrix the one extracting all rows at once gives."""
    import pyarrow as pa
    import pyarrow.compute as pc

    import tensorcost.features.metaschedule as ms
    from tensorcost import dataset
    from tensorcost import records as rec
    from tensorcost.collect import read_tasks
    from tensorcost.hardware.catalog import catalog_target
    from tensorcost.tvm_support import tvm_target

    slot = "zen3-2c.avx2-t1"
    table = rec.read_records(dataset.bundled_records_path(slot))
    tasks_held = sorted(set(table.column("task_id").to_pylist()))[:2]
    table = table.filter(pc.is_in(table.column("task_id"), value_set=pa.array(tasks_held)))
    keep, held = [], {}
    for i, t in enumerate(table.column("task_id").to_pylist()):
        held[t] = held.get(t, 0) + 1
        if held[t] <= 20:  # 20 of each task, however many the bundled data holds
            keep.append(i)
    table = table.take(pa.array(keep))
    errors = table.column("error_no").to_pylist()
    errors[1] = 4  # a failed run: no features for it
    table = table.set_column(table.schema.get_field_index("error_no"), "error_no", pa.array(errors, table.schema.field("error_no").type))
    records_file = tmp_path / "records.parquet"
    rec.write_records(table, records_file)
    valid = [i for i, e in enumerate(errors) if e == 0]
    assert ms.valid_task_counts(records_file) == {t: sum(1 for i in valid if table.column("task_id")[i].as_py() == t) for t in tasks_held}

    tasks = {t.task_id: t for t in read_tasks(dataset.programs_dir("cpu"))[0]}
    target = tvm_target(catalog_target(slot))
    monkeypatch.setattr(ms, "BATCH_RECORDS", 3)
    n_rows = ms.ms_features_of_records(records_file, tasks, target, tmp_path / "features", "s")
    ids = table.column("record_id").to_pylist()
    got = ms.load_ms_features(tmp_path / "features", "s", [ids[i] for i in valid])
    want = ms.extract_ms_features(tasks, [(table.column("task_id")[i].as_py(), table.column("trace")[i].as_py()) for i in valid], target)
    assert n_rows == sum(len(m) for m in want) > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(UserError, match="no MetaSchedule features of 1 record"):
        ms.load_ms_features(tmp_path / "features", "s", [ids[1]])  # the error record
