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
