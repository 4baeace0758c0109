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
