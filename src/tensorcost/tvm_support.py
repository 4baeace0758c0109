"""Shared TVM plumbing: cheap intrinsic registration, targets, trace <-> JSON, workload info.

TVM is imported lazily inside functions so that importing this module (for example from a
LocalBuilder worker's initializer) costs nothing until TVM is really needed.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from typing import Any

_INTRIN_PKG = "tvm.s_tir.tensor_intrin"


def register_x86_intrinsics_only() -> None:
    """Register only the x86 tensor intrinsics instead of every backend's.

    MetaSchedule imports `tvm.s_tir.tensor_intrin` when it creates a TuneContext and again in
    every LocalBuilder worker; that package parses all CUDA/ROCm/ARM/Hexagon intrinsics (about
    29 s here). We pre-seed `sys.modules` with a package stub whose `__path__` is the real one,
    so only `x86` is imported (about 0.2 s). Call it in the main process and pass it as the
    builder's `initializer`. Safe to call twice.
    """
    if _INTRIN_PKG in sys.modules:
        return
    import tvm  # noqa: F401  (the parent package must exist before the stub)

    pkg_dir = os.path.join(os.path.dirname(sys.modules["tvm"].__file__), "s_tir", "tensor_intrin")
    stub = types.ModuleType(_INTRIN_PKG)
    stub.__path__ = [pkg_dir]  # type: ignore[attr-defined]
    stub.__package__ = _INTRIN_PKG
    sys.modules[_INTRIN_PKG] = stub
    importlib.import_module(f"{_INTRIN_PKG}.x86")


def is_cuda(target) -> bool:
    """Whether `target` (a tvm.target.Target) generates CUDA code."""
    return target is not None and str(target.kind.name) == "cuda"


def register_intrinsics_for(target=None) -> None:
    """The tensor intrinsics MetaSchedule's default rules for `target` look up by name.

    x86 only (about 0.2 s), plus `tvm.s_tir.tensor_intrin.cuda` for a CUDA target: the default
    CUDA rules of sm_70 and newer ("cuda-tensorcore") resolve the wmma/mma intrinsics when a
    TuneContext is made, even for float32 workloads they never tensorize. That module alone costs
    about 10 s on a slow core (the whole package 29 s), once per process, and only the process
    that makes TuneContexts needs it: building replays no rule, so builder workers keep
    `register_x86_intrinsics_only` as their initializer."""
    register_x86_intrinsics_only()
    if is_cuda(target):
        importlib.import_module(f"{_INTRIN_PKG}.cuda")


def build_in_target_scope(mod, target, params=None):
    """MetaSchedule's default build, run inside `with target:` (a LocalBuilder `f_build`).

    TVM 0.27 hands CUDA source to `tvm_callback_cuda_compile` (NVRTC by default, nvcc with
    TVM_CUDA_COMPILE_MODE=nvcc) while building, and that callback takes the architecture from
    `Target.current()`: outside a target scope it asks the GPU instead, which fails where there
    is none and otherwise opens a CUDA context in every builder worker. Module-level, so the
    builder's worker processes can import it."""
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build

    with target:
        return default_build(mod, target, params)


def tvm_target(hw) -> Any:
    """A `tvm.target.Target` for a catalog `Target`."""
    import tvm

    return tvm.target.Target(hw.tvm_target_config())


def to_plain_json(obj: Any) -> Any:
    """Convert TVM FFI containers and immediates (Array, Map, String, IntImm...) to plain Python."""
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, str):
        return str(obj)
    name = type(obj).__name__
    if name in ("IntImm", "FloatImm"):
        return obj.value
    if hasattr(obj, "items"):
        return {str(k): to_plain_json(v) for k, v in obj.items()}
    if hasattr(obj, "__iter__"):
        return [to_plain_json(x) for x in obj]
    raise TypeError(f"cannot convert {name} to JSON")


def trace_to_json(trace) -> str:
    """A schedule trace (with its decisions and postprocessing) as compact JSON text."""
    return json.dumps(to_plain_json(trace.as_json(remove_postproc=False)), separators=(",", ":"))


def apply_trace_json(mod, trace_json: str):
    """Re-apply a saved trace to a fresh schedule of `mod`; returns the schedule."""
    from tvm.s_tir import Schedule
    from tvm.s_tir.schedule import Trace

    sch = Schedule(mod)
    Trace.apply_json_to_schedule(json.loads(trace_json), sch)
    return sch


def structural_hash_hex(mod) -> str:
    import tvm_ffi

    return format(tvm_ffi.structural_hash(mod) & (2**64 - 1), "016x")


def workload_info(mod) -> dict:
    """Buffer shapes, FLOPs and bytes moved of a task's (single PrimFunc) workload module."""
    import tvm
    from tvm.s_tir.analysis import estimate_tir_flops

    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    func = next(iter(mod.functions.values()))
    shapes, nbytes = [], 0.0
    for info in ArgInfo.from_prim_func(func):
        shape = [int(d) for d in info.shape]
        shapes.append(shape)
        n = 1
        for d in shape:
            n *= d
        dtype = tvm.DataType(str(info.dtype))
        nbytes += n * dtype.bits * dtype.lanes / 8
    try:
        flops = float(estimate_tir_flops(mod))
    except Exception:  # noqa: BLE001  (some layout-only tasks have no countable ops)
        flops = 0.0
    return {"shapes": shapes, "flops": flops, "bytes_moved": float(nbytes)}


def tvm_version() -> str:
    import tvm

    return str(tvm.__version__)
