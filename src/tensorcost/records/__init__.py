"""Records: the canonical table (one row per measured program on one target), its readers and
writers, the op kinds of workloads, the TenSet importer (with its optional C scanner) and
dataset-level views, a program set's table (`records.programs`: read by task). Pure Python + Arrow: no TVM, MLflow, GX or torch.
"""

from .ops import OP_KINDS, classify_op
from .programs import PROGRAMS_SCHEMA, merge_programs, program_task_counts, read_program_ids, read_programs, write_programs
from .schema import (
    COLUMNS,
    COPY_BATCH_ROWS,
    RECORDS_SCHEMA,
    RECORDS_SCHEMA_VERSION,
    RecordsSchemaError,
    check_schema,
    copy_records,
    open_records_file,
    program_id,
    read_records,
    record_id,
    to_table,
    write_records,
)

__all__ = [
    "COLUMNS", "COPY_BATCH_ROWS", "OP_KINDS", "PROGRAMS_SCHEMA", "RECORDS_SCHEMA", "RECORDS_SCHEMA_VERSION",
    "RecordsSchemaError", "check_schema", "classify_op", "copy_records", "merge_programs",
    "open_records_file", "program_id", "program_task_counts", "read_program_ids", "read_programs",
    "read_records", "record_id", "to_table", "write_programs", "write_records",
]
