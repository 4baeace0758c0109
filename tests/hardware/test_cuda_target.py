"""CUDA targets with TVM, no GPU needed: the target TVM builds from the catalog, random programs
from the CUDA design space lowered to CUDA source, and the collector's GPU plumbing."""

from __future__ import annotations

import json

import pytest

from tensorcost import collect, dataset, hardware
from tensorcost.errors import UserError

tvm = pytest.importorskip("tvm")


HOPPERS = sorted(p.id for p in hardware.platforms().values() if p.microarch == "hopper")


@pytest.mark.parametrize("platform", HOPPERS)
def test_gpu_target_config_is_a_tvm_cuda_target(platform):
    hw = hardware.catalog_target(f"{platform}.cuda")
    target = tvm.target.Target(hw.tvm_target_config())
    assert target.kind.name == "cuda"
    assert "gpu" in [str(k) for k in target.keys]
    assert str(target.attrs["arch"]) == "sm_90"
    assert int(target.attrs["max_threads_per_block"]) == 1024
    assert int(target.attrs["max_shared_memory_per_block"]) == 49152
    assert int(target.attrs["thread_warp_size"]) == 32


def _matmul_task(n: int = 64) -> collect.Task:
    from tvm import te

    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    mod = tvm.IRModule({"main": te.create_prim_func([a, b, c])})
    return collect.Task("t0", "matmul", {"net": 1}, mod, "matmul", [[n, n]] * 3, 2.0 * n**3, 3.0 * n * n * 4)


def test_sample_cuda_programs_and_lower_to_cuda_source():
    """About 10-15 s: the CUDA tensor intrinsics MetaSchedule's default GPU rules need are
    registered once (tvm.s_tir.tensor_intrin.cuda), then 4 programs are sampled and one built."""
    import tvm_ffi

    from tensorcost.tvm_support import apply_trace_json, build_in_target_scope, tvm_target

    target = tvm_target(hardware.catalog_target("h100.cuda"))
    task = _matmul_task()
    traces = collect.sample_programs(task, target, 4, seed=0)
    assert len(traces) == 4 and len(set(traces)) == 4
    insts = {inst[0] for inst in json.loads(traces[0])[0]}
    assert "Bind" in insts  # GPU schedules bind loops to blockIdx/threadIdx (CPU ones never do)
    assert "threadIdx.x" in traces[0]
    sch = apply_trace_json(task.mod, traces[0])  # traces replay on a fresh schedule
    if tvm_ffi.get_global_func("ffi.Module.create.cuda", allow_missing=True) is not None:
        pytest.skip("a CUDA runtime is loaded here: building would run nvcc/NVRTC (the device script checks that)")
    mod = build_in_target_scope(sch.mod, target)
    cuda = [m for m in mod.imports if m.kind == "cuda"]
    assert cuda and "__global__" in cuda[0].inspect_source()


def test_runner_device_type_and_gpu_builder_runner(monkeypatch):
    import os

    from tensorcost.tvm_support import build_in_target_scope

    monkeypatch.setenv("TVM_NUM_THREADS", "7")
    gpu = hardware.catalog_target("h200.cuda")
    assert collect.runner_device_type(gpu) == "cuda"
    # real MetaSchedule builder and runner objects (no worker process starts before a build)
    builder, _ = collect.make_builder_runner(gpu, collect.MeasureConfig(builder_workers=14))
    assert builder.max_workers == 14 and builder._inst.f_build is build_in_target_scope
    assert os.environ["TVM_NUM_THREADS"] == "7"  # a GPU target leaves the CPU thread pool alone
    cpu = hardware.catalog_target("zen5-2c.avx2-t2")
    assert collect.runner_device_type(cpu) == "cpu"
    builder, _ = collect.make_builder_runner(cpu, collect.MeasureConfig())
    assert os.environ["TVM_NUM_THREADS"] == "2"
    assert builder._inst.f_build is None  # CPU builds stay MetaSchedule's default


def test_task_set_kind():
    assert collect.task_set_kind({"reference_target": "sapphirerapids-2c.avx512-t2"}) == "cpu"  # no kind written: the catalog's
    assert collect.task_set_kind({"reference_target": "h100.cuda"}) == "gpu"
    for name in ("cpu", "gpu"):  # the bundled task sets say what they are, under target ids of the catalog
        meta = json.loads((dataset.programs_dir(name) / "tasks.json").read_text())["meta"]
        assert meta["reference_kind"] == collect.task_set_kind({"reference_target": meta["reference_target"]}) == name
    with pytest.raises(UserError, match="reference_target .*'cuda-h100'"):  # an old label the catalog does not know
        collect.task_set_kind({"reference_target": "cuda-h100"})
    assert collect.task_set_kind({"reference_target": "x", "reference_kind": "gpu"}) == "gpu"


def test_programs_of_one_kind_are_not_measured_on_the_other(tmp_path):
    from tensorcost.errors import UserError

    with pytest.raises(UserError, match="sample a task set for this kind first"):
        collect.check_task_set_kind({"reference_target": "x", "reference_kind": "cpu"}, hardware.catalog_target("h200.cuda"), tmp_path)
    collect.check_task_set_kind({"reference_kind": "gpu"}, hardware.catalog_target("h200.cuda"), tmp_path)  # no error


def test_error_messages_keep_their_end():
    """A TVM traceback ends with the error (CUDA runtime error, nvcc output): keep head and tail."""
    msg = "Traceback\n" + "  frame\n" * 1000 + "RuntimeError: CUDA Runtime Error: cudaErrorNoDevice"
    clipped = collect.clip_error(msg)
    assert len(clipped) == 2000
    assert clipped.startswith("Traceback") and clipped.endswith("cudaErrorNoDevice")
    assert collect.clip_error("short") == "short"
