"""Features of measured programs: primitive tokens, flat vectors, workload and hardware features,
and MetaSchedule's own per-store features; the feature table every model reads.

Pure Python + NumPy except `metaschedule`, which imports TVM inside its functions.
"""

from .program import COMPACT_DIM, FLAT_PROGRAM_DIM, TOKEN_DIM, TraceParseError, flat_program_features, slog2, tokenize_trace
from .store import fragment_paths, iter_fragments, iter_groups, load_feature_table, read_fragment, read_meta, store_hash, write_feature_store
from .table import (
    FEATURE_SCHEMA_VERSION,
    FeatureTable,
    MissingFeaturesError,
    featurize_records,
    featurize_table,
    flat_feature_names,
    flat_vector,
    per_task_labels,
    table_from_traces,
)
from .workload import WORKLOAD_FEATURE_NAMES, workload_features

__all__ = [
    "COMPACT_DIM", "FEATURE_SCHEMA_VERSION", "FLAT_PROGRAM_DIM", "TOKEN_DIM", "WORKLOAD_FEATURE_NAMES", "FeatureTable", "MissingFeaturesError",
    "TraceParseError", "featurize_records", "featurize_table", "flat_feature_names", "flat_program_features", "flat_vector",
    "fragment_paths", "iter_fragments", "iter_groups", "load_feature_table", "per_task_labels", "read_fragment", "read_meta",
    "slog2", "store_hash", "table_from_traces", "tokenize_trace", "workload_features", "write_feature_store",
]
