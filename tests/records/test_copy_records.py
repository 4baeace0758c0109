"""`records.copy_records`: the records stage's batch-at-a-time copy (a platform's records are never
one table) writes what reading the sources whole and relabelling them would, checks every source
before writing, and never loses the file it replaces."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tensorcost import dataset
from tensorcost.records import RECORDS_SCHEMA, RecordsSchemaError, copy_records, read_records, write_records


@pytest.fixture(scope="module")
def sample() -> pa.Table:
    # real records of a bundled platform: 3 tasks' worth, errors included where there are any
    table = read_records(dataset.bundled_records_path("zen3-2c.avx2-t1"))
    tasks = sorted(set(table.column("task_id").to_pylist()))[:3]
    return table.filter(pa.compute.is_in(table.column("task_id"), value_set=pa.array(tasks)))


def _relabelled(table: pa.Table, target: str) -> pa.Table:
    return dataset.relabel(table, target).cast(RECORDS_SCHEMA)  # what a written file reads back as


def test_a_batched_relabelled_copy_equals_the_whole_table_relabelled(tmp_path, sample):
    src = tmp_path / "src.parquet"
    write_records(sample, src)
    out = tmp_path / "out.parquet"
    rows = copy_records(src, out, transform=lambda part: dataset.relabel(part, "somewhere-2c.avx2-t1"), batch_rows=97)
    assert rows == sample.num_rows > 97 * 3
    assert pq.ParquetFile(out).metadata.num_row_groups == -(-sample.num_rows // 97)  # a batch at a time
    assert read_records(out).equals(_relabelled(sample, "somewhere-2c.avx2-t1"))
    assert set(read_records(out).column("target").to_pylist()) == {"somewhere-2c.avx2-t1"}


def test_a_directory_of_parts_is_copied_in_file_order(tmp_path, sample):
    parts = tmp_path / "parts"
    parts.mkdir()
    half = sample.num_rows // 2
    write_records(sample.slice(half), parts / "part-000002.parquet")
    write_records(sample.slice(0, half), parts / "part-000001.parquet")
    rows = copy_records(parts, tmp_path / "out.parquet", batch_rows=50)
    assert rows == sample.num_rows
    assert read_records(tmp_path / "out.parquet").equals(read_records(parts))
    assert read_records(tmp_path / "out.parquet").column("record_id").to_pylist()[:half] == sample.slice(0, half).column("record_id").to_pylist()


def test_a_bad_source_is_named_before_a_row_is_written_and_the_old_output_stays(tmp_path, sample):
    parts = tmp_path / "parts"
    parts.mkdir()
    write_records(sample, parts / "part-000001.parquet")
    pq.write_table(sample.drop_columns(["latencies"]), parts / "part-000002.parquet")
    out = tmp_path / "out.parquet"
    write_records(sample.slice(0, 5), out)
    before = out.read_bytes()
    with pytest.raises(RecordsSchemaError, match=r"part-000002\.parquet.*latencies"):
        copy_records(parts, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "parts"]  # no debris


def test_copying_a_file_onto_itself_keeps_every_record(tmp_path, sample):
    path = tmp_path / "records.parquet"
    write_records(sample, path)
    assert copy_records(path, path, transform=lambda part: dataset.relabel(part, "x-2c.avx2-t1"), batch_rows=64) == sample.num_rows
    assert read_records(path).equals(_relabelled(sample, "x-2c.avx2-t1"))


def test_no_records_files_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no records files under"):
        copy_records(tmp_path / "empty", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_a_file_cut_short_is_named_and_nothing_is_written(tmp_path, sample):
    src = tmp_path / "src.parquet"
    write_records(sample, src)
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])  # a copy killed half way, a full disk
    with pytest.raises(RecordsSchemaError, match=r"src\.parquet: not a readable Parquet records file"):
        copy_records(src, tmp_path / "out.parquet")
    with pytest.raises(RecordsSchemaError, match=r"src\.parquet: not a readable Parquet records file"):
        read_records(src)
    assert not (tmp_path / "out.parquet").exists()
