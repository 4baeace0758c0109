"""The canonical records table: build, write, read, schema errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tensorcost.records import (
    COLUMNS,
    RECORDS_SCHEMA,
    RecordsSchemaError,
    program_id,
    read_records,
    record_id,
    to_table,
    write_records,
)


def test_roundtrip_two_rows(tmp_path, make_row):
    rows = [make_row(0, latency=1.5e-3), make_row(1, error_no=2)]
    table = to_table(rows)
    assert table.schema.equals(RECORDS_SCHEMA)
    path = tmp_path / "sub" / "records.parquet"  # parent does not exist yet
    write_records(table, path)
    assert path.exists()
    assert not list(tmp_path.rglob("*.tmp")), "the temporary file must be renamed away"

    back = read_records(path)
    assert back.num_rows == 2
    assert tuple(back.column_names) == COLUMNS
    got = back.to_pylist()
    for want, have in zip(rows, got):
        assert have == want
    # the error row keeps its null latency
    assert got[1]["latency_s"] is None and got[1]["error_no"] == 2


def test_to_table_missing_required_field_raises(make_row):
    row = make_row(0)
    del row["trace"]
    with pytest.raises(RecordsSchemaError, match="trace"):
        to_table([row])


def test_to_table_accepts_missing_nullable_fields(make_row):
    row = make_row(0)
    del row["error_msg"]  # nullable: may be absent
    t = to_table([row])
    assert t.column("error_msg").to_pylist() == [None]


def test_read_records_missing_column_names_file_and_column(tmp_path, make_row):
    table = to_table([make_row(0), make_row(1)]).drop_columns(["flops"])
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    with pytest.raises(RecordsSchemaError) as exc:
        read_records(bad)
    msg = str(exc.value)
    assert str(bad) in msg
    assert "'flops'" in msg and "missing" in msg


def test_read_records_wrong_type_is_reported(tmp_path, make_row):
    table = to_table([make_row(0)])
    i = table.schema.get_field_index("task_weight")
    table = table.set_column(i, pa.field("task_weight", pa.int64()), table.column(i).cast(pa.int64()))
    bad = tmp_path / "typed.parquet"
    pq.write_table(table, bad)
    with pytest.raises(RecordsSchemaError, match="task_weight"):
        read_records(bad)


def test_read_records_directory_of_parts(tmp_path, make_row):
    d = tmp_path / "records"
    write_records(to_table([make_row(0), make_row(1)]), d / "part-0.parquet")
    write_records(to_table([make_row(2, task_id="00000000000000bb")]), d / "nested" / "part-1.parquet")
    (d / "notes.txt").write_text("not a parquet file, must be ignored")
    back = read_records(d)
    assert back.num_rows == 3
    assert sorted(back.column("record_id").to_pylist()) == sorted(
        [make_row(0)["record_id"], make_row(1)["record_id"], make_row(2, task_id="00000000000000bb")["record_id"]]
    )
    # a list of paths mixes files and directories
    both = read_records([d / "part-0.parquet", d / "nested"])
    assert both.num_rows == 3


def test_read_records_extra_columns_are_dropped(tmp_path, make_row):
    table = to_table([make_row(0)]).append_column("extra", pa.array([1]))
    p = tmp_path / "extra.parquet"
    pq.write_table(table, p)
    assert tuple(read_records(p).column_names) == COLUMNS


def test_read_records_empty_directory_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "empty")


def test_ids_are_stable_and_distinct():
    assert program_id("[1]") == program_id("[1]")
    assert program_id("[1]") != program_id("[2]")
    assert len(program_id("[1]")) == 16
    # the target is part of the record id: same program on two targets -> two records
    assert record_id("testcpu-1c.avx2-t1", "t", "p") != record_id("testcpu-1c.avx2-t2", "t", "p")
    assert len(record_id("a", "b", "c")) == 20


def test_read_records_mixed_nullability_parts(tmp_path, make_row):
    """Parts written by another Arrow writer may mark every field nullable: nullability is not
    meaning, so both parts are read, under the records schema."""
    d = tmp_path / "records"
    write_records(to_table([make_row(0)]), d / "a.parquet")
    loose = pa.schema([f.with_nullable(True) for f in RECORDS_SCHEMA])
    pq.write_table(to_table([make_row(1)]).cast(loose), d / "b.parquet")
    got = read_records(d)
    assert got.num_rows == 2 and got.schema.equals(RECORDS_SCHEMA)
    assert sorted(got.column("record_id").to_pylist()) == sorted([make_row(0)["record_id"], make_row(1)["record_id"]])
