"""A program set's table read by task (`records.programs`): sorted row groups, the row groups of
other tasks skipped, the same programs in the same order as reading the file whole."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

import tensorcost.records.programs as programs_table
from tensorcost import dataset
from tensorcost.collect import read_task_programs, task_program_counts
from tensorcost.records import PROGRAMS_SCHEMA, program_id, program_task_counts, read_programs, write_programs


def _table(tasks: list[str], per_task: int) -> pa.Table:
    # tasks interleaved, as `dataset pack --merge` appends a grown task's new programs at the end
    rows = [{"task_id": t, "program_id": "", "trace": f'[["{t}", {j}]]'} for j in range(per_task) for t in tasks]
    for r in rows:
        r["program_id"] = program_id(r["trace"])
    return pa.Table.from_pylist(rows, schema=PROGRAMS_SCHEMA)


def _whole(path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in pq.read_table(path).to_pylist():
        out.setdefault(row["task_id"], []).append(row["trace"])
    return out


def test_written_by_task_in_row_groups_and_read_by_task(tmp_path, monkeypatch):
    monkeypatch.setattr(programs_table, "ROW_GROUP_ROWS", 10)
    tasks = [f"task{i:02d}" for i in (7, 3, 11, 0, 5, 9)]
    path = tmp_path / "programs.parquet"
    write_programs(_table(tasks, 12), path)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 8  # 72 rows in row groups of 10
    ids = pq.read_table(path).column("task_id").to_pylist()
    assert ids == sorted(ids)
    whole = _whole(path)
    assert all(whole[t] == [f'[["{t}", {j}]]' for j in range(12)] for t in tasks)  # a task's order kept (stable sort)
    assert program_task_counts(path) == Counter({t: 12 for t in tasks})

    reads = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, i, **kw: reads.append(i) or real(self, i, **kw))
    got = read_programs(path, ["task05", "task00"])
    assert got == {"task00": whole["task00"], "task05": whole["task05"]}
    assert reads == [0, 1, 2, 3]  # task00: rows 0-11, task05: rows 24-35 of the sorted file; groups 4-7 skipped
    assert read_programs(path, ["nothere"]) == {} and read_programs(path, []) == {}
    assert read_programs(path) == whole


def test_a_file_of_the_earlier_layout_reads_the_same(tmp_path):
    path = tmp_path / "programs.parquet"
    table = _table(["b", "a", "c"], 5)
    pq.write_table(table, path)  # unsorted, one row group: what packs wrote before
    assert read_programs(path, ["c", "a"]) == {t: v for t, v in _whole(path).items() if t in ("a", "c")}
    assert read_task_programs(tmp_path / "none") == {} and task_program_counts(tmp_path / "none") == {}


def test_the_collect_stage_sample_reads_only_its_tasks_and_draws_what_the_whole_set_draws():
    """The collect stage (stages.collect) draws its tasks from the task ids alone, then reads those
    tasks' programs: the same sample `dataset.sample_programs` draws from the set read whole."""
    where = dataset.programs_dir("cpu")
    whole = _whole(where / "programs.parquet")
    for tasks, per_task, seed in ((8, 24, 0), (3, 0, 5), (0, 2, 1)):
        task_ids = dataset.sample_task_ids(task_program_counts(where), tasks, seed)
        part = read_task_programs(where, task_ids)
        assert set(part) == set(task_ids) and (not tasks or len(part) == tasks)
        assert dataset.sample_programs(part, 0, per_task, seed) == dataset.sample_programs(whole, tasks, per_task, seed)


def _read(path) -> pa.Table:
    return pq.read_table(path).cast(PROGRAMS_SCHEMA)


def test_a_merge_a_row_group_at_a_time_writes_what_writing_both_whole_writes(tmp_path, monkeypatch):
    """`merge_programs` (dataset pack --merge): new tasks before, between and after the set's,
    grown tasks whose programs span row groups; the file equals `write_programs` of the two
    concatenated, row groups included, and reads no more than a row group of the set at a time."""
    monkeypatch.setattr(programs_table, "ROW_GROUP_ROWS", 7)
    held = _table(["b", "d", "f"], 9)  # 27 programs: row groups of 7 cut through every task
    path = tmp_path / "programs.parquet"
    write_programs(held, path)
    fresh = _table(["a", "d", "c", "z", "b"], 4)
    fresh = fresh.set_column(2, "trace", pa.array([t + "-new" for t in fresh.column("trace").to_pylist()]))
    expected = tmp_path / "expected.parquet"
    write_programs(pa.concat_tables([held, fresh]), expected)

    batches = []
    real = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, **kw: batches.append(kw.get("batch_size")) or real(self, **kw))
    assert programs_table.merge_programs(path, fresh) == 47
    assert _read(path).equals(_read(expected))
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in (path, expected)] == [7, 7]
    assert 7 in batches  # the set read 7 programs at a time
    merged = _whole(path)
    assert merged["d"][:9] == _whole(expected)["d"][:9] and all(t.endswith("-new") for t in merged["d"][9:])


def test_a_merge_into_a_set_of_the_earlier_layout_writes_the_task_layout(tmp_path):
    path = tmp_path / "programs.parquet"
    held = _table(["b", "a", "c"], 5)
    pq.write_table(held, path)  # unsorted, one row group: what packs wrote before
    fresh = _table(["a", "e"], 2).slice(0, 3)
    expected = tmp_path / "expected.parquet"
    write_programs(pa.concat_tables([held, fresh]), expected)
    assert programs_table.merge_programs(path, fresh, tmp_path / "out.parquet") == 18
    assert _read(tmp_path / "out.parquet").equals(_read(expected))
    assert _read(path).equals(held)  # the input untouched when the output is elsewhere


def test_program_ids_of_some_tasks_come_without_their_traces(tmp_path):
    path = tmp_path / "programs.parquet"
    write_programs(_table(["x", "y", "z"], 3), path)
    ids = programs_table.read_program_ids(path, ["z", "x"])
    assert ids.column_names == ["task_id", "program_id"]
    assert ids.column("task_id").to_pylist() == ["x"] * 3 + ["z"] * 3
    assert programs_table.read_program_ids(path, ["nothere"]).num_rows == 0
