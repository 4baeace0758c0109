"""Hardware catalog and host detection, on synthetic host descriptions (never the real host)."""

from __future__ import annotations

import pytest

from tensorcost import hardware
from tensorcost.hardware import (
    HARDWARE_FEATURE_NAMES,
    HardwareTarget,
    HostInfo,
    UnknownTargetError,
    get_target,
    host_targets,
    parse_cpuinfo,
)

CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Test CPU @ 2.50GHz
cpu MHz\t\t: 2500.000
flags\t\t: fpu sse4_2 popcnt avx2 fma bmi1 bmi2

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Some Other Name
cpu MHz\t\t: 3100.000
flags\t\t: fpu

processor\t: 2
model name\t: Intel(R) Xeon(R) Test CPU @ 2.50GHz
cpu MHz\t\t: 2500.000
flags\t\t: fpu sse4_2 popcnt avx2 fma bmi1 bmi2
"""

AVX2_ONLY = frozenset({"fpu", "avx2", "fma", "bmi1", "bmi2"})


def _host(flags=AVX2_ONLY, n=3) -> HostInfo:
    return HostInfo(
        model_name="Test CPU", flags=frozenset(flags), logical_cpus=n, clock_ghz=2.5, physical_cores=n,
        l1d_kb=48.0, l2_kb=1280.0, l3_kb=55296.0,
    )


def test_parse_cpuinfo():
    model, flags, n, ghz = parse_cpuinfo(CPUINFO)
    # the first processor's model name, flags and MHz are kept; 3 "processor" lines
    assert model == "Intel(R) Xeon(R) Test CPU @ 2.50GHz"
    assert flags == frozenset({"fpu", "sse4_2", "popcnt", "avx2", "fma", "bmi1", "bmi2"})
    assert n == 3
    assert ghz == pytest.approx(2.5)  # 2500 MHz / 1000


def test_parse_cpuinfo_empty():
    assert parse_cpuinfo("") == ("", frozenset(), 0, 0.0)


def test_host_targets_avx2_only():
    targets = host_targets(_host(AVX2_ONLY, n=3))
    assert set(targets) == {"cpu-avx2-t1", "cpu-avx2-t2", "cpu-avx2-t3"}
    assert not any("avx512" in t or "sse42" in t for t in targets)
    t2 = targets["cpu-avx2-t2"]
    assert t2.target_id == "cpu-avx2-t2"
    assert t2.kind == "cpu" and t2.threads == 2
    assert t2.vector_bytes == 32 and t2.mcpu == "haswell"
    assert (t2.clock_ghz, t2.l1d_kb, t2.l2_kb, t2.l3_kb) == (2.5, 48.0, 1280.0, 55296.0)


def test_host_targets_sse42_needs_its_flags():
    targets = host_targets(_host(AVX2_ONLY | {"sse4_2", "popcnt"}, n=2))
    assert set(targets) == {"cpu-avx2-t1", "cpu-avx2-t2", "cpu-sse42-t1", "cpu-sse42-t2"}
    assert targets["cpu-sse42-t1"].vector_bytes == 16 and targets["cpu-sse42-t1"].mcpu == "nehalem"
    # one of the two sse42 flags is not enough
    assert not any(t.startswith("cpu-sse42") for t in host_targets(_host(AVX2_ONLY | {"sse4_2"}, n=2)))


def test_host_targets_avx512_requires_every_flag():
    avx512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
    full = host_targets(_host(AVX2_ONLY | avx512, n=1))
    assert "cpu-avx512-t1" in full and full["cpu-avx512-t1"].vector_bytes == 64
    partial = host_targets(_host(AVX2_ONLY | (avx512 - {"avx512vl"}), n=1))
    assert "cpu-avx512-t1" not in partial


def test_get_target_unknown_lists_valid_ids(monkeypatch):
    monkeypatch.setattr(hardware, "detect_host", lambda: _host(AVX2_ONLY, n=2))
    assert get_target("cpu-avx2-t2").threads == 2
    with pytest.raises(UnknownTargetError) as exc:
        get_target("cpu-avx512-t1")
    msg = str(exc.value)
    assert "cpu-avx512-t1" in msg
    assert "cpu-avx2-t1" in msg and "cpu-avx2-t2" in msg
    assert issubclass(UnknownTargetError, ValueError)


def test_get_target_with_no_supported_variant(monkeypatch):
    monkeypatch.setattr(hardware, "detect_host", lambda: _host({"fpu"}, n=2))
    with pytest.raises(UnknownTargetError, match="none detected"):
        get_target("cpu-avx2-t1")


def test_tvm_target_config():
    t = host_targets(_host(AVX2_ONLY, n=2))["cpu-avx2-t2"]
    cfg = t.tvm_target_config()
    assert cfg["kind"] == "llvm"
    assert cfg["mcpu"] == "haswell"
    assert cfg["num-cores"] == 2


def test_tvm_options_override_and_gpu_kind():
    t = HardwareTarget(
        target_id="gpu-x", kind="gpu", vector_bytes=0, threads=1, physical_cores=1, clock_ghz=1.0,
        l1d_kb=0, l2_kb=0, l3_kb=0, mcpu=None, tvm_options={"arch": "sm_90"},
    )
    cfg = t.tvm_target_config()
    assert cfg["kind"] == "cuda" and cfg["arch"] == "sm_90"
    assert "mcpu" not in cfg


def test_features_follow_feature_names():
    t = host_targets(_host(AVX2_ONLY, n=2))["cpu-avx2-t1"]
    feats = dict(zip(HARDWARE_FEATURE_NAMES, t.features()))
    assert len(t.features()) == len(HARDWARE_FEATURE_NAMES)
    assert feats["is_gpu"] == 0.0
    assert feats["vector_bytes"] == 32.0
    assert feats["threads"] == 1.0
    assert feats["l2_kb"] == 1280.0


@pytest.mark.parametrize(
    "text, kb",
    [("48K", 48.0), ("96 KiB (2 instances)", 96.0), ("4 MiB", 4096.0), ("1G", 1024.0 * 1024), ("junk", 0.0)],
)
def test_parse_size_kb(text, kb):
    assert hardware._parse_size_kb(text) == kb


def test_physical_cores_counts_distinct_core_ids():
    from tensorcost.hardware import physical_cores_from_cpuinfo

    # two hyperthreads on core 0 and one on core 1 of the same package: 2 physical cores
    text = "processor: 0\nphysical id: 0\ncore id: 0\n\nprocessor: 1\nphysical id: 0\ncore id: 0\n\nprocessor: 2\nphysical id: 0\ncore id: 1\n"
    assert physical_cores_from_cpuinfo(text) == 2
    assert physical_cores_from_cpuinfo("processor: 0\n") == 0


# --- GPUs: nvidia-smi parsing and the GPU catalog (captured output, no GPU needed) -------------

# `nvidia-smi --query-gpu=index,name,memory.total,compute_cap,clocks.max.sm,driver_version
#  --format=csv,noheader` on a two-GPU host.
NVIDIA_SMI = """\
0, NVIDIA H100 80GB HBM3, 81559 MiB, 9.0, 1980 MHz, 570.133.20
1, NVIDIA H200, 143771 MiB, 9.0, 1980 MHz, 570.133.20
"""


def _gpu(name: str, index: int = 0) -> hardware.GpuInfo:
    return hardware.GpuInfo(index=index, name=name, memory_mib=81559.0, compute_cap="9.0", max_sm_clock_mhz=1980.0)


def test_parse_nvidia_smi():
    gpus = hardware.parse_nvidia_smi(NVIDIA_SMI)
    assert [g.index for g in gpus] == [0, 1]
    h100, h200 = gpus
    assert h100.name == "NVIDIA H100 80GB HBM3"
    assert (h100.memory_mib, h100.compute_cap, h100.max_sm_clock_mhz, h100.driver_version) == (81559.0, "9.0", 1980.0, "570.133.20")
    assert h200.name == "NVIDIA H200" and h200.memory_mib == 143771.0


def test_parse_nvidia_smi_nounits_na_and_noise():
    text = (
        "0, NVIDIA H100 PCIe, 81559, [N/A], [N/A], [N/A]\n"
        "\n"
        "Some warning line from the driver\n"
        "1, NVIDIA H200, 143771 MiB\n"  # too few fields: skipped
    )
    (g,) = hardware.parse_nvidia_smi(text)
    assert g.name == "NVIDIA H100 PCIe" and g.memory_mib == 81559.0
    assert (g.compute_cap, g.max_sm_clock_mhz, g.driver_version) == ("", 0.0, "")
    assert hardware.parse_nvidia_smi("") == []
    # the minimal query older drivers answer
    assert hardware.parse_nvidia_smi("0, Tesla T4\n", ("index", "name")) == [hardware.GpuInfo(0, "Tesla T4")]


def test_detect_gpus_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    hardware.detect_gpus.cache_clear()
    try:
        assert hardware.detect_gpus() == ()
        assert hardware.gpu_targets() == {}
    finally:
        hardware.detect_gpus.cache_clear()


def test_detect_gpus_when_nvidia_smi_fails(monkeypatch):
    import subprocess

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if "compute_cap" in cmd[1]:  # an old driver refuses the field
            return subprocess.CompletedProcess(cmd, 2, "", 'Field "compute_cap" is not a valid field to query.')
        return subprocess.CompletedProcess(cmd, 0, "0, NVIDIA H200\n", "")

    monkeypatch.setattr(hardware.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(hardware.subprocess, "run", fake_run)
    hardware.detect_gpus.cache_clear()
    try:
        assert hardware.detect_gpus() == (hardware.GpuInfo(0, "NVIDIA H200"),)
        assert len(calls) == 2 and calls[1][1] == "--query-gpu=index,name"
    finally:
        hardware.detect_gpus.cache_clear()

    def broken(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, 20)

    monkeypatch.setattr(hardware.subprocess, "run", broken)
    try:
        assert hardware.detect_gpus() == ()
    finally:
        hardware.detect_gpus.cache_clear()


@pytest.mark.parametrize(
    "name, tid",
    [
        ("NVIDIA H100 80GB HBM3", "cuda-h100"),
        ("NVIDIA H100 NVL", "cuda-h100"),
        ("NVIDIA H100 PCIe", "cuda-h100-pcie"),
        ("NVIDIA H200", "cuda-h200"),
        ("NVIDIA H200 NVL", "cuda-h200"),
        ("NVIDIA A100-SXM4-80GB", None),
        ("Tesla T4", None),
    ],
)
def test_match_gpu(name, tid):
    assert hardware.match_gpu(name) == tid


def test_gpu_catalog_specs():
    cat = hardware.catalog_gpus()
    assert {"cuda-h100", "cuda-h100-pcie", "cuda-h200"} <= set(cat)
    h100 = cat["cuda-h100"]
    assert h100.kind == "gpu" and h100.physical_cores == 132 and h100.threads == 132
    assert h100.clock_ghz == pytest.approx(1.98) and h100.l2_kb == 51200 and h100.l3_kb == 0
    assert h100.tvm_options == {
        "arch": "sm_90", "max_threads_per_block": 1024, "max_shared_memory_per_block": 49152,
        "thread_warp_size": 32, "registers_per_block": 65536, "l2_cache_size_bytes": 52428800,
    }
    assert cat["cuda-h100-pcie"].physical_cores == 114
    feats = dict(zip(HARDWARE_FEATURE_NAMES, cat["cuda-h200"].features()))
    assert feats["is_gpu"] == 1.0 and feats["physical_cores"] == 132.0
    # hardware.json round trip (stages rebuild the target from it)
    assert HardwareTarget(**h100.to_dict()) == h100


def test_gpu_tvm_target_config():
    cfg = hardware.catalog_gpus()["cuda-h200"].tvm_target_config()
    assert cfg["kind"] == "cuda" and cfg["arch"] == "sm_90"
    assert cfg["max_threads_per_block"] == 1024 and cfg["max_shared_memory_per_block"] == 49152 and cfg["thread_warp_size"] == 32
    assert "num-cores" not in cfg and "mcpu" not in cfg


def test_gpu_targets_follow_the_measured_gpu(monkeypatch):
    gpus = hardware.parse_nvidia_smi(NVIDIA_SMI)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    found = hardware.gpu_targets(gpus)
    assert list(found) == ["cuda-h100"]  # device 0 is the only one measured
    assert found["cuda-h100"].cpu_model == "NVIDIA H100 80GB HBM3"  # the board nvidia-smi names
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert list(hardware.gpu_targets(gpus)) == ["cuda-h200"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert hardware.gpu_targets(gpus) == {}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert hardware.gpu_targets([_gpu("NVIDIA A100-SXM4-80GB")]) == {}
    assert hardware.gpu_targets([]) == {}


def test_available_and_get_target_with_a_gpu(monkeypatch):
    monkeypatch.setattr(hardware, "detect_host", lambda: _host(AVX2_ONLY, n=1))
    monkeypatch.setattr(hardware, "detect_gpus", lambda: (_gpu("NVIDIA H200"),))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert set(hardware.available_targets()) == {"cpu-avx2-t1", "cuda-h200"}
    assert get_target("cuda-h200").kind == "gpu"
    with pytest.raises(UnknownTargetError) as exc:
        get_target("cuda-h100")  # in the catalog, but not this host's GPU
    msg = str(exc.value)
    assert "cuda-h200" in msg and "cpu-avx2-t1" in msg and "NVIDIA H200" in msg
    with pytest.raises(UnknownTargetError, match="valid targets: cpu-avx2-t1, cuda-h200"):
        get_target("cuda-x999")


def test_gpu_targets_without_a_gpu(monkeypatch):
    monkeypatch.setattr(hardware, "detect_host", lambda: _host(AVX2_ONLY, n=1))
    monkeypatch.setattr(hardware, "detect_gpus", lambda: ())
    assert set(hardware.available_targets()) == {"cpu-avx2-t1"}
    with pytest.raises(UnknownTargetError, match="catalog GPU"):
        get_target("cuda-h100")
    # code for a catalog GPU can still be generated (sampling needs no GPU) and its records read
    assert hardware.codegen_target("cuda-h100").target_id == "cuda-h100"
    assert hardware.describe_target("cuda-h200").kind == "gpu"
    assert hardware.codegen_target("cpu-avx2-t1").kind == "cpu"
    with pytest.raises(UnknownTargetError):
        hardware.codegen_target("cpu-avx512-t1")
