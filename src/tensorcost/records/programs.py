"""A program set's table (`programs.parquet`: task id, program id, trace), read by task.

Written sorted by task (a task's programs keep their order: the first ones are those every
platform measured) in row groups of `ROW_GROUP_ROWS`, so a reader that wants a few tasks reads
the row groups whose task-id range holds them and nothing else: the collect stage's host sample
costs the sample, not the set (TenSet's ~8.6M programs a platform would be ~24 GB of traces).
Files written before this layout are read the same way, a row group at a time.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..safeio import atomic_output
from .sorted_files import is_sorted, merge_sorted

PROGRAMS_SCHEMA = pa.schema([("task_id", pa.string()), ("program_id", pa.string()), ("trace", pa.string())])
ROW_GROUP_ROWS = 4_096  # ~11 MB of traces a row group


def write_programs(table: pa.Table, path: str | Path) -> None:
    """`table` (PROGRAMS_SCHEMA's columns) to `path`, atomically: sorted by task id, stable."""
    table = table.select(PROGRAMS_SCHEMA.names).cast(PROGRAMS_SCHEMA)
    table = table.take(pc.sort_indices(table, sort_keys=[("task_id", "ascending")]))  # a stable sort
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)


def program_task_counts(path: str | Path) -> dict[str, int]:
    """Programs a task holds, in the file's task order; reads the task-id column a row group at a
    time (memory: the tasks, not the programs)."""
    counts: dict[str, int] = {}
    with pq.ParquetFile(path) as pf:
        for i in range(pf.num_row_groups):
            for item in pc.value_counts(pf.read_row_group(i, columns=["task_id"]).column("task_id")).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return counts


def _task_range(pf: pq.ParquetFile, i: int) -> tuple[str, str] | None:
    """(min, max) task id of row group `i` from its statistics; None when it has none."""
    col = pf.schema_arrow.get_field_index("task_id")
    stats = pf.metadata.row_group(i).column(col).statistics
    if stats is None or not stats.has_min_max:
        return None
    return stats.min, stats.max


def _task_row_groups(path: str | Path, task_ids: Iterable[str] | None, columns: list[str]) -> Iterable[pa.Table]:
    """The file's rows of `task_ids` (all with None), a row group at a time: row groups whose
    task-id statistics hold none of them are skipped, the others read and filtered."""
    wanted = None if task_ids is None else sorted(set(task_ids))
    with pq.ParquetFile(path) as pf:
        for i in range(pf.num_row_groups):
            if wanted is not None:
                bounds = _task_range(pf, i)
                if bounds is not None:
                    at = bisect.bisect_left(wanted, bounds[0])
                    if at == len(wanted) or wanted[at] > bounds[1]:
                        continue
            group = pf.read_row_group(i, columns=columns)
            if wanted is not None:
                group = group.filter(pc.is_in(group.column("task_id"), value_set=pa.array(wanted, pa.string())))
            yield group


def read_programs(path: str | Path, task_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Task id -> its programs' traces, in file order; with `task_ids`, those tasks' only (memory:
    the asked programs and one row group)."""
    out: dict[str, list[str]] = {}
    for group in _task_row_groups(path, task_ids, ["task_id", "trace"]):
        for task, trace in zip(group.column("task_id").to_pylist(), group.column("trace").to_pylist()):
            out.setdefault(task, []).append(trace)
    return out


def read_program_ids(path: str | Path, task_ids: Iterable[str]) -> pa.Table:
    """The (task id, program id) rows of `task_ids`' programs, in file order, without their traces."""
    parts = list(_task_row_groups(path, task_ids, ["task_id", "program_id"]))
    schema = pa.schema([PROGRAMS_SCHEMA.field("task_id"), PROGRAMS_SCHEMA.field("program_id")])
    return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()


def merge_programs(path: str | Path, additions: pa.Table, out: str | Path | None = None) -> int:
    """The program set at `path` with `additions` (PROGRAMS_SCHEMA's columns) joined, written to
    `out` (default: `path`, replaced atomically) as `write_programs` writes the two together: by
    task, a task's programs in the set first. Read and written a row group at a time (memory: the
    additions and a row group, never the set); a set written before the task layout is rewritten
    whole, once. Returns the programs written."""
    out = path if out is None else out
    if not is_sorted(path, ["task_id"]):
        table = pa.concat_tables([pq.read_table(path, columns=PROGRAMS_SCHEMA.names).cast(PROGRAMS_SCHEMA),
                                  additions.select(PROGRAMS_SCHEMA.names).cast(PROGRAMS_SCHEMA)])
        write_programs(table, out)
        return table.num_rows
    return merge_sorted(path, additions, out, ["task_id"], PROGRAMS_SCHEMA, ROW_GROUP_ROWS)
