"""Platforms, variants and targets, on simulated hosts (cpuinfo fixtures) and on this machine."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tensorcost import hardware
from tensorcost.hardware import HARDWARE_FEATURE_NAMES, Platform, Target, UnknownTargetError
from tensorcost.hardware import detect

CPUINFO = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
ZEN3, SPR, ARM = CPUINFO / "zen3-epyc-7763.txt", CPUINFO / "sapphirerapids-xeon.txt", CPUINFO / "graviton2-aarch64.txt"
ZEN5 = CPUINFO / "zen5-epyc-kvm.txt"


@pytest.fixture
def simulated_host(monkeypatch):
    """Make `tensorcost.hardware` see another machine: its cpuinfo text, no GPU."""

    def use(path: Path):
        monkeypatch.setenv("TENSORCOST_CPUINFO", str(path))
        monkeypatch.setattr(hardware, "detect_gpu_platform", lambda: None)
        detect.detect_cpu.cache_clear()
        detect.detect_cpu_platform.cache_clear()

    yield use
    detect.detect_cpu.cache_clear()
    detect.detect_cpu_platform.cache_clear()


@pytest.mark.parametrize("path,machine,vendor,uarch", [(ZEN3, "x86_64", "AuthenticAMD", "zen3"), (SPR, "x86_64", "GenuineIntel", "sapphirerapids"),
                                                       (ARM, "aarch64", "ARM", "neoverse_n1"), (ZEN5, "x86_64", "AuthenticAMD", "zen5")])
def test_microarchitecture_from_cpuinfo(path, machine, vendor, uarch):
    info = detect.parse_cpuinfo(path.read_text())
    assert (info.machine, info.vendor, info.logical_cpus) == (machine, vendor, 2)
    assert detect.microarchitecture(info) == uarch


def test_hidden_system_flags_do_not_hide_the_microarchitecture():
    """The Zen 3 guest hides pku/ospke (archspec alone would call it zen2), and Linux names SSE3 `pni`."""
    info = detect.parse_cpuinfo(ZEN3.read_text())
    assert "pku" not in info.flags and "sse3" in info.flags and "pni" in info.flags
    # an ISA feature missing is not tolerated: without avx2 it is no longer a zen3 (nor zen2)
    crippled = detect.CpuInfo(**{**info.__dict__, "flags": info.flags - {"avx2"}})
    assert detect.microarchitecture(crippled) not in ("zen3", "zen2")


def test_a_zen5_guest_without_rdseed_is_still_zen5_and_the_catalogs_zen5():
    """Linux clears `rdseed` on Zen 5 (the 2025 erratum): archspec alone calls this host x86_64_v4,
    a new 'platform' that would duplicate zen5-2c in the dataset."""
    info = detect.parse_cpuinfo(ZEN5.read_text())
    assert "rdseed" not in info.flags and (info.cpu_family, info.cpu_model) == (26, 2)
    platform = detect.cpu_platform(info, {"l1d": 48, "l2": 1024, "l3": 32768}, 2, hardware.platforms())
    assert platform.id == "zen5-2c" and platform.microarch == "zen5"


def test_this_host_is_named_at_least_as_precisely_as_archspec_does():
    import archspec.cpu

    ours = archspec.cpu.TARGETS[detect.microarchitecture(detect.detect_cpu())]
    assert ours >= archspec.cpu.host()  # the same, or a descendant (archspec stops at hidden flags)


def test_cpu_platform_ids_and_catalog_matching():
    catalog = hardware.platforms()
    zen3 = detect.cpu_platform(detect.parse_cpuinfo(ZEN3.read_text()), {"l1d": 32, "l2": 512, "l3": 32768}, 2, catalog)
    assert zen3.id == "zen3-2c" and zen3.microarch == "zen3" and "avx512f" not in zen3.isa and "avx2" in zen3.isa
    assert zen3.fingerprint == {"cpu_family": 25, "cpu_model": 1, "stepping": 1}
    # the bundled Sapphire Rapids: same microarchitecture, cores and caches -> the catalog's entry
    spr_info = detect.parse_cpuinfo(SPR.read_text())
    same = detect.cpu_platform(spr_info, {"l1d": 48, "l2": 2048, "l3": 491520}, 2, catalog)
    assert same == catalog["sapphirerapids-2c"]
    # another Sapphire Rapids (other caches): its id must not collide with the catalog's
    other = detect.cpu_platform(spr_info, {"l1d": 48, "l2": 2048, "l3": 107520}, 2, catalog)
    assert other.id.startswith("sapphirerapids-2c-") and other.id not in catalog
    assert other.id == detect.cpu_platform(spr_info, {"l1d": 48, "l2": 2048, "l3": 107520}, 2, catalog).id  # stable
    assert detect.cpu_platform(spr_info, {"l1d": 48, "l2": 2048, "l3": 107520}, 4, catalog).id == "sapphirerapids-4c"


def test_variants_each_simulated_host_supports(simulated_host):
    simulated_host(ZEN3)
    assert sorted(t.variant.id for t in hardware.host_targets().values()) == ["avx2-t1", "avx2-t2", "sse42-t1", "sse42-t2"]
    assert hardware.resolve_target("auto", ["avx512-t1", "avx2-t1"]).id == "zen3-2c.avx2-t1"
    simulated_host(SPR)
    assert {"avx512-t2", "avx2-t1", "sse42-t2"} <= {t.variant.id for t in hardware.host_targets().values()}
    simulated_host(ARM)
    assert hardware.host_targets() == {}


def test_one_line_errors_name_what_is_valid(simulated_host):
    simulated_host(ZEN3)
    with pytest.raises(UnknownTargetError) as exc:
        hardware.resolve_target("zen3-2c.avx512-t2")
    msg = str(exc.value)
    assert "\n" not in msg and "zen3-2c.avx2-t1" in msg and "avx512" in msg
    with pytest.raises(UnknownTargetError, match="another machine of the catalog"):
        hardware.resolve_target("zen5-2c.avx2-t1")
    with pytest.raises(UnknownTargetError, match="malformed target id 'cpu-avx2-t1'"):
        hardware.resolve_target("cpu-avx2-t1")
    with pytest.raises(UnknownTargetError, match="unknown code-generation variant 'neon-t1'"):
        hardware.catalog_target("zen5-2c.neon-t1")
    simulated_host(ARM)
    with pytest.raises(UnknownTargetError) as exc:
        hardware.resolve_target("auto", ["avx2-t1"])
    assert "aarch64" in str(exc.value) and "x86-64" in str(exc.value) and "\n" not in str(exc.value)


def test_host_alias_resolves_to_this_platform(simulated_host):
    simulated_host(SPR)
    assert hardware.resolve_target("host.avx512-t2").platform.microarch == "sapphirerapids"


def test_target_features_come_from_the_platform():
    spr, zen5 = hardware.catalog_target("sapphirerapids-2c.avx2-t1"), hardware.catalog_target("zen5-2c.avx2-t1")
    for t in (spr, zen5):
        assert len(t.features()) == len(HARDWARE_FEATURE_NAMES)
    f = {t.id: dict(zip(HARDWARE_FEATURE_NAMES, t.features())) for t in (spr, zen5)}
    # same variant (vector width, threads), different machines: the description tells them apart
    assert f[spr.id]["vector_bytes"] == f[zen5.id]["vector_bytes"] == pytest.approx(math.log2(33)) and f[spr.id]["threads"] == 1
    assert f[spr.id]["isa_amx"] == 1 and f[zen5.id]["isa_amx"] == 0
    assert f[spr.id]["vendor_intel"] == 1 and f[zen5.id]["vendor_amd"] == 1
    assert f[spr.id]["l2_kb"] != f[zen5.id]["l2_kb"]
    assert spr.tvm_target_config() == {"kind": "llvm", "num-cores": 1, "mcpu": "haswell"}
    gpu = hardware.catalog_target("h200.cuda")
    assert gpu.tvm_target_config()["kind"] == "cuda" and gpu.tvm_target_config()["arch"] == "sm_90" and gpu.threads == 132


def test_target_round_trips_through_json():
    t = hardware.catalog_target("zen5-2c.avx2-t1")
    assert Target.from_dict(t.to_dict()) == t


def test_catalog_holds_every_bundled_platform_and_tensets_six():
    from tensorcost import dataset

    known = hardware.platforms()
    for t in dataset.bundled_targets():
        hardware.catalog_target(t)  # a bundled target always resolves
    assert {"platinum-8272", "e5-2673", "epyc-7452", "graviton2", "k80", "t4"} <= set(known)
    assert hardware.catalog_version() >= 2
    for p in known.values():
        assert p.cores > 0 and p.kind in ("cpu", "gpu") and p.source, p.id
    with pytest.raises(UnknownTargetError):
        Platform.from_dict({"id": "x", "kind": "cpu", "vendor": "v", "model_name": "m", "microarch": "u", "cores": 1, "clock_ghz": 1,
                            "l1d_kb": 1, "l2_kb": 1, "l3_kb": 1, "colour": "red"})


NVIDIA_SMI = """\
0, NVIDIA H200, 143771 MiB, 9.0, 1980 MHz, 580.159.04
1, NVIDIA H100 PCIe, 81559 MiB, 9.0, 1755 MHz, 580.159.04
"""


def test_parse_nvidia_smi_and_gpu_platforms():
    gpus = detect.parse_nvidia_smi(NVIDIA_SMI)
    assert [g.name for g in gpus] == ["NVIDIA H200", "NVIDIA H100 PCIe"] and gpus[0].memory_mib == 143771 and gpus[0].compute_cap == "9.0"
    assert detect.parse_nvidia_smi("garbage\n\n") == []
    assert detect.gpu_platform(gpus[0]).id == "h200"
    assert detect.gpu_platform(gpus[1]).id == "h100-pcie"  # the first matching entry wins
    unknown = detect.gpu_platform(detect.GpuInfo(0, "NVIDIA RTX 6000 Ada Generation", 49140, "8.9", 2505, "580", sm_count=142))
    assert unknown.id == "rtx-6000-ada-generation" and unknown.cores == 142 and unknown.tvm == {"arch": "sm_89"}


def test_the_measured_gpu_follows_cuda_visible_devices(monkeypatch):
    gpus = detect.parse_nvidia_smi(NVIDIA_SMI)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect.measured_gpu(gpus).name == "NVIDIA H200"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert detect.measured_gpu(gpus).name == "NVIDIA H100 PCIe"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect.measured_gpu(gpus) is None


def test_cache_sizes(tmp_path):
    assert detect.parse_cache_size_kb("32K") == 32 and detect.parse_cache_size_kb("32 MiB") == 32768 and detect.parse_cache_size_kb("x") == 0
    for i, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"), ("3", "Unified", "105M")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(level)
        (d / "type").write_text(kind)
        (d / "size").write_text(size)
    assert detect.read_cache_sizes(tmp_path) == {"l1d": 48, "l2": 2048, "l3": 105 * 1024}
