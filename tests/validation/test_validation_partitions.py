"""The records suite on a file, partition by partition (validate_records_file): the verdict of
validate_records on the whole table, every row checked, failures naming their partitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tensorcost import dataset
from tensorcost.records import read_records, write_records
from tensorcost.validation import validate_records, validate_records_file

ROOT = Path(__file__).resolve().parents[2]
TARGET = "zen5-2c.avx2-t1"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, pa.Table]:
    """The bundled Zen 5 records (66 tasks, 6,513 rows) under their target id, tasks contiguous."""
    table = dataset.relabel(read_records(ROOT / "data/bundled/platforms/zen5-2c/avx2-t1.parquet"), TARGET)
    table = table.sort_by([("task_id", "ascending"), ("program_id", "ascending")])
    path = tmp_path_factory.mktemp("part") / "good.parquet"
    write_records(table, path)
    return path, table


def _verdict(summary) -> tuple:
    return summary.success, summary.n_rows, [(f["expectation"], f["column"], f["unexpected_count"], f["examples"]) for f in summary.failures]


def _with(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type))


def test_good_file_same_verdict(good):
    path, table = good
    whole = validate_records(table.to_pandas(), TARGET)
    parts = validate_records_file(path, TARGET, batch_rows=1000)
    assert whole.success and _verdict(parts) == _verdict(whole)
    assert parts.statistics == {**whole.statistics, "partitions": parts.statistics["partitions"]}
    assert parts.statistics["partitions"] >= 6 and parts.failed_partitions == []
    assert parts.to_dict()["failed_partitions"] == []


def test_bad_row_in_a_later_partition_is_named(good, tmp_path):
    path, table = good
    row = table.num_rows - 10  # in the last task
    bad = _with(_with(table, "latency_s", row, -1.0), "trace", row - 1, "{not json")
    write_records(bad, tmp_path / "bad.parquet")
    whole = validate_records(bad.to_pandas(), TARGET, )
    parts = validate_records_file(tmp_path / "bad.parquet", TARGET, batch_rows=1000, docs_dir=tmp_path / "docs")
    assert not whole.success and _verdict(parts) == _verdict(whole)
    last = parts.statistics["partitions"] - 1
    assert [p["partition"] for p in parts.failed_partitions] == [last]
    task = table.column("task_id")[row].as_py()
    for f in parts.failures:
        (p,) = f["partitions"]
        assert p["partition"] == last and p["rows"][0] <= row < p["rows"][1] and p["last_task"] == task
    assert (tmp_path / "docs" / "index.html").exists()  # Data Docs, once


def test_duplicate_id_across_partitions(good, tmp_path):
    path, table = good
    dup = _with(table, "record_id", table.num_rows - 1, table.column("record_id")[0].as_py())  # first and last partition
    write_records(dup, tmp_path / "dup.parquet")
    whole = validate_records(dup.to_pandas(), TARGET)
    parts = validate_records_file(tmp_path / "dup.parquet", TARGET, batch_rows=1000)
    assert not whole.success and _verdict(parts) == _verdict(whole)
    (f,) = parts.failures
    assert f["column"] == "record_id" and f["unexpected_count"] == 2
    assert [p["partition"] for p in f["partitions"]] == [0, parts.statistics["partitions"] - 1] == [p["partition"] for p in parts.failed_partitions]


def test_interleaved_tasks(good, tmp_path):
    """Rows shuffled: partitions are still whole tasks (sorted through a spool), same verdict."""
    path, table = good
    row = 17
    bad = _with(table, "latency_s", row, float("inf")).take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    write_records(bad, tmp_path / "shuffled.parquet")
    whole = validate_records(bad.to_pandas(), TARGET)
    parts = validate_records_file(tmp_path / "shuffled.parquet", TARGET, batch_rows=1000)
    assert not whole.success and _verdict(parts) == _verdict(whole)
    assert parts.statistics["tasks"] == len(pc.unique(table.column("task_id")))  # no task split across partitions
    (f,) = parts.failures
    (p,) = f["partitions"]
    assert p["rows"] is None and p["tasks"] >= 1 and parts.failed_partitions == [p]


def test_empty_file_fails_like_an_empty_frame(good, tmp_path):
    path, table = good
    write_records(table.slice(0, 0), tmp_path / "empty.parquet")
    whole = validate_records(table.slice(0, 0).to_pandas(), TARGET)
    parts = validate_records_file(tmp_path / "empty.parquet", TARGET)
    assert not whole.success and _verdict(parts) == _verdict(whole)
