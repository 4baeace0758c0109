"""Features of measured programs: primitive tokens, flat vectors, workload and hardware features,
and MetaSchedule's own per-store features; the feature table every model reads.

Pure Python + NumPy except `metaschedule`, which imports TVM inside its functions.
"""

from .program import FLAT_PROGRAM_DIM, TOKEN_DIM, TraceParseError, flat_program_features, slog2, tokenize_trace
from .table import (
    FEATURE_SCHEMA_VERSION,
    FeatureTable,
    MissingFeaturesError,
    featurize_table,
    flat_feature_names,
    flat_vector,
    load_feature_table,
    per_task_labels,
    save_feature_frame,
    table_from_traces,
)
from .workload import WORKLOAD_FEATURE_NAMES, workload_features

__all__ = [
    "FEATURE_SCHEMA_VERSION", "FLAT_PROGRAM_DIM", "TOKEN_DIM", "WORKLOAD_FEATURE_NAMES", "FeatureTable", "MissingFeaturesError",
    "TraceParseError", "featurize_table", "flat_feature_names", "flat_program_features", "flat_vector", "load_feature_table",
    "per_task_labels", "save_feature_frame", "slog2", "table_from_traces", "tokenize_trace", "workload_features",
]
