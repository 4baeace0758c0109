"""The canonical records table: one row per measured program on one target.

Every data source (our TVM collector, the TenSet importer) writes this schema, and every
later step reads only it. Pure Python + Arrow: no TVM, MLflow or torch imports.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MissingDataError, UserError
from ..safeio import atomic_output

RECORDS_SCHEMA_VERSION = 1

# Column order is part of the contract: readers select by name, writers emit all of them.
RECORDS_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # "tvm-metaschedule" | "tenset"
        pa.field("target", pa.string(), nullable=False),  # target id from the hardware catalog
        pa.field("task_id", pa.string(), nullable=False),  # workload structural hash
        pa.field("task_name", pa.string(), nullable=False),
        pa.field("networks", pa.string(), nullable=False),  # JSON {network: occurrences}
        pa.field("task_weight", pa.int32(), nullable=False),  # occurrences over all networks
        pa.field("op_kind", pa.string(), nullable=False),
        pa.field("shapes", pa.string(), nullable=False),  # JSON list of buffer shapes
        pa.field("flops", pa.float64(), nullable=False),
        pa.field("bytes_moved", pa.float64(), nullable=False),
        pa.field("program_id", pa.string(), nullable=False),  # hash of the trace
        pa.field("trace", pa.string(), nullable=False),  # JSON trace (MetaSchedule) or steps (Ansor)
        pa.field("latencies", pa.list_(pa.float64()), nullable=False),  # every timed repeat, seconds
        pa.field("latency_s", pa.float64(), nullable=True),  # mean of latencies; null on error
        pa.field("error_no", pa.int32(), nullable=False),  # 0 = measured fine
        pa.field("error_msg", pa.string(), nullable=True),
        pa.field("measured_at", pa.float64(), nullable=False),  # unix time
        pa.field("tvm_version", pa.string(), nullable=False),
    ]
)
COLUMNS = tuple(RECORDS_SCHEMA.names)


class RecordsSchemaError(UserError, ValueError):
    """A records file does not have the canonical columns or types."""


def program_id(trace_json: str) -> str:
    return hashlib.sha1(trace_json.encode()).hexdigest()[:16]


def record_id(target: str, task_id: str, prog_id: str) -> str:
    return hashlib.sha1(f"{target}|{task_id}|{prog_id}".encode()).hexdigest()[:20]


def to_table(rows: Iterable[dict]) -> pa.Table:
    """Build a canonical table from row dicts; a missing or mistyped field raises."""
    rows = list(rows)
    for i, row in enumerate(rows):
        missing = [c for c in COLUMNS if c not in row and RECORDS_SCHEMA.field(c).nullable is False]
        if missing:
            raise RecordsSchemaError(f"row {i}: missing required fields {missing}")
    return pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA)


def write_records(table: pa.Table, path: str | Path) -> None:
    with atomic_output(path) as tmp:  # a reader never sees half a file
        pq.write_table(table.select(list(COLUMNS)).cast(RECORDS_SCHEMA), tmp, compression="zstd")


def check_schema(schema: pa.Schema, where: str) -> None:
    problems = []
    for f in RECORDS_SCHEMA:
        if f.name not in schema.names:
            problems.append(f"missing column {f.name!r}")
        elif not schema.field(f.name).type.equals(f.type):
            problems.append(f"column {f.name!r} has type {schema.field(f.name).type}, expected {f.type}")
    if problems:
        raise RecordsSchemaError(f"{where}: not a canonical records table: " + "; ".join(problems))


def records_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The records files of `paths`: files as given, directories searched for *.parquet (sorted)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.rglob("*.parquet")) if p.is_dir() else [p])
    if not files:
        raise MissingDataError(f"no records files under {[str(p) for p in paths]}")
    return files


def open_records_file(path: str | Path) -> pq.ParquetFile:
    """A records file opened for reading a batch at a time, its schema checked: a missing file,
    a file that is not Parquet (cut short, overwritten) or one without the canonical columns is
    a clear error naming it, before anything reads a row."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: no records file there")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RecordsSchemaError(f"{path}: not a readable Parquet records file ({exc})") from exc
    check_schema(pf.schema_arrow, str(path))
    return pf


COPY_BATCH_ROWS = 4_096  # ~12 MB of traces a batch, a row group of the copy (the reader holds a few times a batch)


def copy_records(paths: str | Path | Iterable[str | Path], out: str | Path,
                 transform: Callable[[pa.Table], pa.Table] | None = None, batch_rows: int = COPY_BATCH_ROWS,
                 then: pa.Table | None = None) -> int:
    """Every record of `paths` (files or directories, as `read_records`) written to `out` in
    their order, `transform`ed a batch at a time, and the records of `then` after them: memory is
    one batch, never the file (a TenSet platform's records as one table: ~6.5 KB a record, ~56 GB). Every
    source's schema is checked before a row is written; `out` is replaced atomically (a killed
    copy leaves the old file, and `out` may be one of the sources). Returns the rows written."""
    files = records_files(paths)
    for f in files:
        open_records_file(f).close()
    rows = 0
    with atomic_output(out) as tmp, pq.ParquetWriter(tmp, RECORDS_SCHEMA, compression="zstd") as writer:
        for f in files:
            with open_records_file(f) as pf:
                for batch in pf.iter_batches(batch_size=batch_rows, columns=list(COLUMNS)):
                    part = pa.Table.from_batches([batch]).cast(RECORDS_SCHEMA)
                    if transform is not None:
                        part = transform(part).select(list(COLUMNS)).cast(RECORDS_SCHEMA)
                    writer.write_table(part)
                    rows += part.num_rows
        if then is not None and then.num_rows:
            writer.write_table(then.select(list(COLUMNS)).cast(RECORDS_SCHEMA), row_group_size=batch_rows)
            rows += then.num_rows
    return rows


def read_records(paths: str | Path | Iterable[str | Path]) -> pa.Table:
    """Read one or more canonical records files (or directories of them) into one table."""
    files = records_files(paths)
    tables = []
    for f in files:
        with open_records_file(f) as pf:
            t = pf.read()
        # Cast: files from other writers may differ only in nullability flags.
        tables.append(t.select(list(COLUMNS)).cast(RECORDS_SCHEMA))
    return pa.concat_tables(tables)
