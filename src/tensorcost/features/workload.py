"""Operator/workload features: FLOPs, bytes, arithmetic intensity, output shape, op kind."""

from __future__ import annotations

from typing import Sequence

from ..records.ops import OP_KINDS
from .program import slog2

OP_INDEX = {k: i for i, k in enumerate(OP_KINDS)}
MAX_SHAPE_DIMS = 6
WORKLOAD_FEATURE_NAMES = (
    ("log2_flops", "log2_bytes", "arith_intensity", "n_buffers")
    + tuple(f"out_dim{i}" for i in range(MAX_SHAPE_DIMS))
    + tuple(f"op_{k}" for k in OP_KINDS)
)


def workload_features(op_kind: str, shapes: Sequence[Sequence[int]], flops: float, bytes_moved: float) -> list[float]:
    """Operator/workload features: FLOPs, bytes, arithmetic intensity, output shape, op kind."""
    out_shape = list(shapes[-1]) if shapes else []
    dims = [slog2(d) for d in out_shape[:MAX_SHAPE_DIMS]]
    dims += [0.0] * (MAX_SHAPE_DIMS - len(dims))
    onehot = [0.0] * len(OP_KINDS)
    onehot[OP_INDEX.get(op_kind, OP_INDEX["other"])] = 1.0
    intensity = flops / bytes_moved if bytes_moved > 0 else 0.0
    return [slog2(flops), slog2(bytes_moved), slog2(intensity), float(len(shapes))] + dims + onehot
