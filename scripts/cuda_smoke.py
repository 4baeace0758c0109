"""Smoke check of a CUDA collection before spending the budget (run by scripts/collect_cuda.sh).

Detects the GPU (NVML or nvidia-smi) and its platform, prints the TVM target and the CUDA
toolchain TVM will use, then samples, builds and runs 2 programs of one small task. When the
build fails with the CUDA compile mode asked for (TVM_CUDA_COMPILE_MODE: nvcc or nvrtc), the
other mode is tried. Writes shell assignments (TARGET=..., TVM_CUDA_COMPILE_MODE=...) to the
file named by the first argument; exits 1 when no program could be built and run.

    python3 scripts/cuda_smoke.py SMOKE_ENV [TASKS_DIR]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path


def say(msg: str) -> None:
    print(f"[smoke] {msg}", flush=True)


def main() -> int:
    env_file = Path(sys.argv[1])
    tasks_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("data/bundled/programs/cpu")
    t0 = time.time()

    from tensorcost import hardware

    gpus = hardware.detect_gpus()
    say(f"GPUs: {[g.__dict__ for g in gpus] or 'none reported'}")
    platform = hardware.detect_gpu_platform()
    if platform is None or not platform.cores:
        say(f"no measurable GPU (found: {', '.join(g.name for g in gpus) or 'none'}; a GPU the catalog does not know needs NVML's SM count)")
        return 1
    hw = hardware.Target(platform, hardware.variant("cuda"))
    say(f"target {hw.id}: {hw.to_dict()}")

    import tvm

    from tensorcost import collect
    from tensorcost.tvm_support import tvm_target

    target = tvm_target(hw)
    dev = tvm.cuda(0)
    say(f"tvm {tvm.__version__} from {os.path.dirname(tvm.__file__)}; TVM target {target}")
    say(f"tvm.cuda(0).exist={dev.exist}" + (f" compute_version={dev.compute_version} name={dev.device_name}" if dev.exist else ""))
    say(f"CUDA_PATH={os.environ.get('CUDA_PATH')} nvcc={shutil.which('nvcc')} cc={shutil.which('g++') or shutil.which('gcc') or shutil.which('cc')}")
    if not dev.exist:
        say("TVM sees no CUDA device (is libcudart.so.13 on LD_LIBRARY_PATH? libtvm_runtime_cuda.so needs it)")
        return 1

    tasks = collect.load_task_set(tasks_dir)[0]
    task = min(tasks, key=lambda t: (t.flops, t.task_id))
    t1 = time.time()
    traces = collect.sample_programs(task, target, 2, seed=0)
    say(f"task {task.task_id} {task.task_name} ({task.flops / 1e6:.1f} MFLOP): {len(traces)} programs sampled in {time.time() - t1:.1f} s")

    modes = [os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc").lower()]
    modes.append("nvrtc" if modes[0] == "nvcc" else "nvcc")
    cfg = collect.MeasureConfig(number=3, repeat=3, min_repeat_ms=10, build_timeout_s=120, run_timeout_s=30, builder_workers=2, run_batch=2)
    for mode in modes:
        os.environ["TVM_CUDA_COMPILE_MODE"] = mode  # builder workers are spawned per batch: they see it
        builder, runner = collect.make_builder_runner(hw, cfg)
        t1 = time.time()
        rows = [r for batch in collect.measure_task(task, traces, hw, builder, runner, cfg) for r in batch]
        ok = [r for r in rows if r["error_no"] == 0]
        say(f"compile mode {mode}: {len(ok)}/{len(rows)} ran in {time.time() - t1:.1f} s; latencies (us): {[[round(x * 1e6, 2) for x in r['latencies']] for r in ok]}")
        for r in rows:
            if r["error_no"]:
                say(f"  error {r['error_no']}: {(r['error_msg'] or '')[-1500:]}")
        if ok:
            env_file.write_text(f"TARGET={hw.id}\nTVM_CUDA_COMPILE_MODE={mode}\n")
            say(f"ok in {time.time() - t0:.1f} s")
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
