"""Hardware x program cross features, derived from a flat vector's named columns.

The paper's point is that a cost model should see the program and the machine together. Our flat
vector holds each apart: the innermost tiles as log2 factors (`tiled_last{j}_log_in{q}`) and the
machine's SIMD width (`hw_vector_bytes`). Whether a tile fills whole vector registers is a
modular fact (7 and 8 are close in log2, far apart in lanes) that trees cannot read off two log
columns; these columns state it, for the last tiled loops' innermost tiles and for the loop the
postprocessor vectorizes (`vector_log_extent`, tc-feat-5). They are computed from the table's own
columns at model input time, so the feature store does not hold them (a model that reads them
records it in its params). Measured: benchmarks/within_task_levers.py, benchmarks/structure_features.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LANE_LOOPS = 3      # the last tiled loops (the output's innermost axes: the vectorized one among them)
LANE_LEVELS = (1, 2)  # the tile at the innermost level and at the innermost two
LANE_FEATURE_NAMES = tuple(
    f"lanes_last{j}_in{q}_{part}" for j in range(LANE_LOOPS) for q in LANE_LEVELS for part in ("remainder", "full", "divides")
) + ("lanes_vectorized_remainder", "lanes_vectorized_full")
LANE_INPUTS = ("hw_vector_bytes",) + tuple(
    f"tiled_last{j}_{c}" for j in range(LANE_LOOPS) for c in ("log_extent",) + tuple(f"log_in{q}" for q in LANE_LEVELS)
) + ("vector_log_extent",)
FP32_BYTES = 4  # the workloads are float32: a lane holds one


def lane_features(flat: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """(n, len(LANE_FEATURE_NAMES)) float32: per last tiled loop and inner level, the tile's
    remainder over the machine's float32 lanes (as a share of a register), its whole registers
    (log2(1 + n)) and whether it divides evenly; the vectorized loop's remainder and whole
    registers. A loop the program does not have (an extent the trace does not tell) reads 0."""
    index = {n: i for i, n in enumerate(feature_names)}
    missing = [n for n in LANE_INPUTS if n not in index]
    if missing:
        raise ValueError(f"lane features need the flat columns {', '.join(missing)}; this table's layout lacks them")
    flat = np.asarray(flat)

    def column(name: str) -> np.ndarray:
        return flat[:, index[name]].astype(np.float64)

    # hw_vector_bytes is log2(1 + bytes) (hardware.catalog); a machine without SIMD has one lane
    lanes = np.maximum(1.0, np.round((np.exp2(column("hw_vector_bytes")) - 1.0) / FP32_BYTES))
    out = np.zeros((len(flat), len(LANE_FEATURE_NAMES)), dtype=np.float32)
    k = 0
    for j in range(LANE_LOOPS):
        present = column(f"tiled_last{j}_log_extent") > 0
        for q in LANE_LEVELS:
            tile = np.round(np.exp2(column(f"tiled_last{j}_log_in{q}")))  # the features hold log2 of integer factors
            remainder = np.mod(tile, lanes)
            out[:, k] = np.where(present, remainder / lanes, 0.0)
            out[:, k + 1] = np.where(present, np.log2(1.0 + np.floor(tile / lanes)), 0.0)
            out[:, k + 2] = (present & (remainder == 0)).astype(np.float32)
            k += 3
    vector = column("vector_log_extent")
    known = vector >= 0  # program.UNKNOWN_EXTENT: -1
    extent = np.round(np.exp2(np.where(known, vector, 0.0)))
    out[:, k] = np.where(known, np.mod(extent, lanes) / lanes, 0.0)
    out[:, k + 1] = np.where(known, np.log2(1.0 + np.floor(extent / lanes)), 0.0)
    return out
