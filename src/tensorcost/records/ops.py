"""Operator kinds of a workload, from its task name: a property of the record, not a feature.

The collector and the TenSet importer both label records with it; `features` one-hot encodes it.
"""

from __future__ import annotations

import re

OP_KINDS = (
    "conv2d_transpose", "conv2d", "conv3d", "batch_matmul", "matmul", "dense",
    "pool", "softmax", "layer_norm", "reduce", "elementwise", "layout", "other",
)


def classify_op(task_name: str) -> str:
    """Op kind from a task name such as 'fused_conv2d_add_relu' (MetaSchedule) or 'conv2d_layer'."""
    name = task_name.lower()
    # Match whole words ("exp" must not match "expand_dims"); keys with "_" match as substrings.
    words = {re.sub(r"\d+$", "", w) for w in name.split("_")}
    for kind, keys in (
        ("conv2d_transpose", ("conv2d_transpose", "conv_transpose")),
        ("conv2d", ("conv2d",)),
        ("conv3d", ("conv3d",)),
        ("batch_matmul", ("batch_matmul",)),
        ("matmul", ("matmul",)),
        ("dense", ("dense",)),
        ("pool", ("pool", "max_pool", "avg_pool", "adaptive_pool")),
        ("softmax", ("softmax",)),
        ("layer_norm", ("layer_norm", "layernorm")),
        ("reduce", ("mean", "sum", "max", "min", "variance")),
        ("layout", ("reshape", "transpose", "concat", "concatenate", "strided_slice", "expand_dims", "squeeze",
                    "flatten", "take", "pad")),
        ("elementwise", ("add", "relu", "multiply", "subtract", "divide", "tanh", "sigmoid", "gelu",
                         "exp", "erf", "clip", "sqrt", "power", "cast", "where")),
    ):
        if any((k in name) if "_" in k else k in words for k in keys):
            return kind
    return "other"
