"""Parquet files kept sorted by key columns, merged with new rows a batch at a time.

`dataset pack --merge` adds a collection run's programs to a program set (sorted by task) and its
records to a platform's records file (sorted by task and program): both files grow with the
dataset (TenSet: ~8.6M programs a platform, ~2.8 KB of trace each), the run's rows do not. The
merge reads the file a batch at a time and places the run's rows where they sort, so memory
is a batch and the run, never the file.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..safeio import atomic_output


def _keys(table: pa.Table, keys: list[str]) -> list[tuple]:
    return list(zip(*(table.column(k).to_pylist() for k in keys)))


def is_sorted(path: str | Path, keys: list[str], batch_rows: int = 65_536) -> bool:
    """Whether the file's rows are in ascending order of `keys` (lexicographic); reads the key
    columns only, a batch at a time."""
    last = None
    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=keys):
            rows = _keys(pa.Table.from_batches([batch]), keys)
            if not rows:
                continue
            if (last is not None and rows[0] < last) or any(b < a for a, b in zip(rows, rows[1:])):
                return False
            last = rows[-1]
    return True


def _sort(table: pa.Table, keys: list[str]) -> pa.Table:
    # Arrow's sort_indices is stable: rows of equal keys keep their order (the file's before the run's)
    return table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys]))


class _RowGroupWriter:
    """Writes tables as row groups of exactly `rows` (the last one shorter), whatever sizes it is handed."""

    def __init__(self, writer: pq.ParquetWriter, rows: int):
        self.writer, self.rows, self.pending, self.held = writer, rows, [], 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.held += table.num_rows
        if self.held >= self.rows:
            self._flush((self.held // self.rows) * self.rows)

    def close(self) -> None:
        if self.held:
            self._flush(self.held)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        self.writer.write_table(table.slice(0, n), row_group_size=self.rows)
        rest = table.slice(n)
        self.pending, self.held = ([rest] if rest.num_rows else []), rest.num_rows


def merge_sorted(path: str | Path, additions: pa.Table, out: str | Path, keys: list[str], schema: pa.Schema, row_group_rows: int,
                 transform: Callable[[pa.Table], pa.Table] | None = None, compression: str = "snappy") -> int:
    """The rows of `path` (sorted by `keys`; check with `is_sorted`), read `row_group_rows` at a
    time and passed through `transform` (it may drop rows), merged with `additions` and written
    to `out` in order of `keys` as row groups of `row_group_rows`: a key's rows from the file
    first, then the additions' in their order. `out` is replaced atomically and may be `path`.
    Memory: a batch of the file, the additions, one row group being written. Returns the rows
    written."""
    adds = _sort(additions.select(schema.names).cast(schema), keys)
    add_keys = _keys(adds, keys)
    at, rows = 0, 0
    with atomic_output(out) as tmp, pq.ParquetWriter(tmp, schema, compression=compression) as writer:
        groups = _RowGroupWriter(writer, row_group_rows)
        for batch in _batches(path, schema, row_group_rows):
            if batch.num_rows:
                last = _keys(batch.slice(batch.num_rows - 1), keys)[0]
                # every key below the batch's last is complete once this batch is read (the file is
                # sorted): the additions below it go now, those at or above it wait for a later batch
                end = bisect.bisect_left(add_keys, last, lo=at)
                chunk = batch if transform is None else transform(batch).select(schema.names).cast(schema)
                chunk = _sort(pa.concat_tables([chunk, adds.slice(at, end - at)]), keys)
                at = end
                groups.write(chunk)
                rows += chunk.num_rows
        groups.write(adds.slice(at))
        rows += adds.num_rows - at
        groups.close()
    return rows


def _batches(path: str | Path, schema: pa.Schema, rows: int) -> Iterator[pa.Table]:
    # batches, not the file's row groups: a file written as one row group is still read in steps
    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=rows, columns=schema.names):
            yield pa.Table.from_batches([batch]).cast(schema)
