"""Detecting the host: its CPU platform (cpuinfo, sysfs, archspec) and its NVIDIA GPUs (NVML).

Every parser takes text, so tests simulate hosts from fixtures (a Zen 3 without AVX-512, a
Sapphire Rapids, an aarch64 machine); `detect_*` read the real machine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform as _platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Platform, isa_features, platforms

# System and security instructions that hypervisors commonly hide from guests (a KVM guest on a
# Zen 4 reports neither `pku` nor `flush_l1d`). They do not change generated code, so naming a
# microarchitecture tolerates their absence; every ISA feature must be present.
# Flags a guest or kernel may hide without changing what code runs: hypervisors mask system
# features; Linux clears `rdseed` on Zen 5 (AMD's 2025 RDSEED erratum), so a Zen 5 guest on a
# recent kernel reports none.
MASKED_BY_HYPERVISORS = frozenset({"pku", "ospke", "flush_l1d", "md_clear", "movdiri", "movdir64b", "waitpkg", "cldemote", "serialize", "sgx", "vmx", "svm",
                                   "rdseed"})


@dataclass(frozen=True)
class CpuInfo:
    """The first processor of /proc/cpuinfo, and the count of processors."""

    machine: str  # x86_64, aarch64, ...
    vendor: str
    model_name: str
    flags: frozenset[str]
    logical_cpus: int
    mhz: float = 0.0
    cpu_family: int | None = None
    cpu_model: int | None = None
    stepping: int | None = None
    cpu_part: str = ""  # aarch64
    raw: dict = field(default_factory=dict, compare=False)


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip(), 0)
    except (TypeError, ValueError):
        return None


def parse_cpuinfo(text: str, machine: str | None = None) -> CpuInfo:
    """/proc/cpuinfo text -> CpuInfo. `machine` defaults to what the text looks like (an aarch64
    cpuinfo has `CPU implementer`), else this host's."""
    first: dict[str, str] = {}
    n = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "processor":
            n += 1
        if n <= 1 and key not in first:
            first[key] = value.strip()
    if machine is None:
        machine = "aarch64" if "CPU implementer" in first else ("x86_64" if "vendor_id" in first else _platform.machine())
    if machine == "aarch64":
        from archspec.cpu.detect import _canonicalize_aarch64_vendor  # archspec's table of Arm implementer codes

        vendor = _canonicalize_aarch64_vendor(first)
        flags = frozenset(first.get("Features", "").split())
        model = first.get("model name") or f"{vendor} part {first.get('CPU part', '?')}"
    else:
        vendor = first.get("vendor_id", "generic")
        flags = set(first.get("flags", "").split())
        if "pni" in flags:  # Linux names SSE3 "pni" (Prescott New Instructions); archspec says "sse3"
            flags.add("sse3")
        flags = frozenset(flags)
        model = first.get("model name", "")
    try:
        mhz = float(first.get("cpu MHz", "0") or 0)
    except ValueError:
        mhz = 0.0
    return CpuInfo(machine=machine, vendor=vendor, model_name=model, flags=flags, logical_cpus=max(n, 1), mhz=mhz,
                   cpu_family=_int(first.get("cpu family")), cpu_model=_int(first.get("model")), stepping=_int(first.get("stepping")),
                   cpu_part=first.get("CPU part", ""), raw=first)


def microarchitecture(info: CpuInfo) -> str:
    """archspec's name of the newest microarchitecture whose ISA features the CPU has (zen4,
    sapphirerapids, neoverse_n1...), tolerating flags hypervisors hide; a generic name
    (x86_64_v3...) when no vendor-specific one fits."""
    try:
        import archspec.cpu as ac
    except ImportError:  # a bare device image measuring GPUs only: the CPU stays unnamed
        return info.machine
    family = ac.TARGETS.get(info.machine)
    if family is None:
        return info.machine
    candidates = []
    for t in ac.TARGETS.values():
        if t.family != family or t.vendor not in (info.vendor, "generic"):
            continue
        if info.machine == "aarch64" and t.vendor == "generic" and t.name != "aarch64":
            continue  # archspec: generic aarch64 levels cannot be told apart from cpuinfo
        if (t.features - info.flags) <= MASKED_BY_HYPERVISORS:
            candidates.append(t)
    if info.cpu_part and any(t.cpu_part == info.cpu_part for t in candidates):
        candidates = [t for t in candidates if t.cpu_part == info.cpu_part or t.vendor == "generic"]
    if not candidates:
        return info.machine
    return max(candidates, key=lambda t: (len(t.ancestors), len(t.features))).name


def parse_cache_size_kb(text: str) -> float:
    """'32K' / '1024K' / '32 MiB' / '2 MiB (2 instances)' -> KiB."""
    m = re.match(r"\s*([\d.]+)\s*([KMG]?)", text.strip())
    if not m:
        return 0.0
    return float(m.group(1)) * {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024 * 1024}[m.group(2)]


def read_cache_sizes(cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, float]:
    """L1d, L2, L3 sizes (KiB) as cpu0 sees them (sysfs): per core for L1/L2, its L3 instance."""
    sizes = {"l1d": 0.0, "l2": 0.0, "l3": 0.0}
    for idx in sorted(cache_dir.glob("index*")):
        try:
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip()
            size = parse_cache_size_kb((idx / "size").read_text())
        except OSError:
            continue
        if level == "1" and kind == "Data":
            sizes["l1d"] = size
        elif level in ("2", "3"):
            sizes[f"l{level}"] = size
    return sizes


def usable_cores() -> int:
    """CPUs this process may run on (affinity: containers and `taskset` limit it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _fingerprint(info: CpuInfo) -> dict:
    return {k: v for k, v in (("cpu_family", info.cpu_family), ("cpu_model", info.cpu_model), ("stepping", info.stepping)) if v is not None}


def _same_machine(entry: Platform, p: Platform) -> bool:
    """A catalog entry describes the detected CPU: same vendor, microarchitecture, cores and
    caches, and the same cpu family/model/stepping where the entry records them."""
    if entry.kind != "cpu" or (entry.vendor, entry.microarch, entry.cores) != (p.vendor, p.microarch, p.cores):
        return False
    if any(abs(a - b) > 0.01 * max(a, b, 1.0) for a, b in ((entry.l1d_kb, p.l1d_kb), (entry.l2_kb, p.l2_kb), (entry.l3_kb, p.l3_kb))):
        return False
    return all(p.fingerprint.get(k) == v for k, v in entry.fingerprint.items())


def cpu_platform(info: CpuInfo, caches: dict[str, float], cores: int, catalog: dict[str, Platform] | None = None) -> Platform:
    """The platform of a CPU: the catalog's entry when it describes this machine, else a new
    one with id `<microarchitecture>-<cores>c` (plus a short hash when that id is taken by
    another machine: two different CPUs never share an id)."""
    catalog = platforms() if catalog is None else catalog
    uarch = microarchitecture(info)
    keep = set(isa_features())
    detected = Platform(
        id=f"{uarch}-{cores}c", kind="cpu", vendor=info.vendor, model_name=info.model_name, microarch=uarch, cores=cores,
        clock_ghz=round(info.mhz / 1000.0, 3), l1d_kb=caches.get("l1d", 0.0), l2_kb=caches.get("l2", 0.0), l3_kb=caches.get("l3", 0.0),
        isa=tuple(f for f in isa_features() if f in info.flags and f in keep), fingerprint=_fingerprint(info),
        source=f"detected on this host ({info.machine})",
    )
    return catalog_platform(detected, catalog)


def catalog_platform(detected: Platform, catalog: dict[str, Platform] | None = None) -> Platform:
    """A detected CPU platform as `catalog` knows it: its entry when one describes the machine,
    else the detected platform, its id suffixed with a short hash when another machine holds it
    (also how a driver files a platform an RPC server detected with another copy of the catalog)."""
    catalog = platforms() if catalog is None else catalog
    for entry in catalog.values():
        if _same_machine(entry, detected):
            return entry
    if detected.id in catalog:
        digest = hashlib.sha1(repr((detected.vendor, detected.model_name, sorted(detected.fingerprint.items()), detected.l1d_kb, detected.l2_kb, detected.l3_kb)).encode()).hexdigest()[:4]
        detected = Platform(**{**detected.__dict__, "id": f"{detected.id}-{digest}"})
    return detected


@functools.lru_cache(maxsize=1)
def detect_cpu() -> CpuInfo:
    """This host's CPU; TENSORCOST_CPUINFO=<file> reads another cpuinfo text instead (a simulated
    host: how the tests try the commands on a Zen 3, a Sapphire Rapids or an aarch64 machine)."""
    simulated = os.environ.get("TENSORCOST_CPUINFO")
    if simulated:
        return parse_cpuinfo(Path(simulated).read_text())
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text, _platform.machine())


@functools.lru_cache(maxsize=1)
def detect_cpu_platform() -> Platform:
    """This host's CPU platform (cached for the process)."""
    info = detect_cpu()
    simulated = os.environ.get("TENSORCOST_CPUINFO")
    cores = info.logical_cpus if simulated else usable_cores()
    return cpu_platform(info, simulated_cache_sizes(Path(simulated)) if simulated else read_cache_sizes(), cores)


def simulated_cache_sizes(cpuinfo: Path) -> dict[str, float]:
    """A simulated host's caches: `<cpuinfo>.caches.json` beside its cpuinfo text ({"l1d": KiB,
    "l2": ..., "l3": ...}), so that the simulated machine does not borrow the real host's sysfs
    sizes (a Zen 3 simulated on a Zen 5 would otherwise be a new, hashed platform); none: zeros."""
    side = cpuinfo.with_name(cpuinfo.name + ".caches.json")
    if not side.exists():
        return {"l1d": 0.0, "l2": 0.0, "l3": 0.0}
    data = json.loads(side.read_text())
    return {k: float(data.get(k, 0.0)) for k in ("l1d", "l2", "l3")}


# -- NVIDIA GPUs ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuInfo:
    """One GPU as the driver reports it (0 / "" where it does not)."""

    index: int
    name: str
    memory_mib: float = 0.0
    compute_cap: str = ""
    max_sm_clock_mhz: float = 0.0
    driver_version: str = ""
    sm_count: int = 0


NVIDIA_SMI_FIELDS = ("index", "name", "memory.total", "compute_cap", "clocks.max.sm", "driver_version")


def _leading_number(text: str) -> float:
    m = re.match(r"\s*([\d.]+)", text)
    return float(m.group(1)) if m else 0.0


def parse_nvidia_smi(text: str, fields: tuple[str, ...] = NVIDIA_SMI_FIELDS) -> list[GpuInfo]:
    """GPUs from `nvidia-smi --query-gpu=<fields> --format=csv,noheader` output (lines without
    one value per field are skipped)."""
    gpus = []
    for line in text.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(fields) or not values[0].isdigit():
            continue
        row = dict(zip(fields, values))
        cap = row.get("compute_cap", "")
        gpus.append(GpuInfo(
            index=int(row["index"]), name=row.get("name", ""), memory_mib=_leading_number(row.get("memory.total", "")),
            compute_cap=cap if re.fullmatch(r"\d+\.\d+", cap) else "", max_sm_clock_mhz=_leading_number(row.get("clocks.max.sm", "")),
            driver_version="" if "N/A" in row.get("driver_version", "N/A") else row["driver_version"],
        ))
    return gpus


def _nvml_gpus() -> list[GpuInfo] | None:
    """GPUs through NVML (nvidia-ml-py); None when the library or the driver is missing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001  (NVMLError_LibraryNotFound, _DriverNotLoaded...)
        return None
    try:
        out = []
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            try:
                sms = int(pynvml.nvmlDeviceGetAttributes_v2(h).multiprocessorCount)
            except Exception:  # noqa: BLE001  (not every driver reports it for a whole GPU)
                sms = 0
            out.append(GpuInfo(index=i, name=str(pynvml.nvmlDeviceGetName(h)), memory_mib=pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20,
                               compute_cap=f"{major}.{minor}", max_sm_clock_mhz=float(pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
                               driver_version=str(driver), sm_count=sms))
        return out
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _smi_gpus() -> list[GpuInfo]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    for fields in (NVIDIA_SMI_FIELDS, ("index", "name")):  # older drivers do not know compute_cap
        try:
            proc = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return []
        if proc.returncode == 0:
            return parse_nvidia_smi(proc.stdout, fields)
    return []


@functools.lru_cache(maxsize=1)
def detect_gpus() -> tuple[GpuInfo, ...]:
    """The NVIDIA GPUs of this host: NVML, else nvidia-smi; empty when there are none."""
    gpus = _nvml_gpus()
    return tuple(gpus if gpus is not None else _smi_gpus())


def measured_gpu(gpus) -> GpuInfo | None:
    """The GPU a measurement runs on: TVM's device 0, i.e. the first of CUDA_VISIBLE_DEVICES when
    it names indices (the driver lists every GPU whatever that variable says), else the first."""
    if not gpus:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.isdigit():
        return next((g for g in gpus if g.index == int(visible)), None)
    if visible == "" and "CUDA_VISIBLE_DEVICES" in os.environ:
        return None  # CUDA_VISIBLE_DEVICES="" hides every GPU
    return gpus[0]


def gpu_platform(gpu: GpuInfo, catalog: dict[str, Platform] | None = None) -> Platform:
    """The catalog's entry whose `match` finds the GPU's name (first wins); otherwise a platform
    from what the driver reports (SMs only when NVML gives them)."""
    catalog = platforms() if catalog is None else catalog
    for entry in catalog.values():
        if entry.kind == "gpu" and entry.match and re.search(entry.match, gpu.name, flags=re.IGNORECASE):
            return entry
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower().replace("nvidia", "")).strip("-") or f"gpu{gpu.index}"
    return Platform(id=slug, kind="gpu", vendor="NVIDIA", model_name=gpu.name, microarch=f"sm_{gpu.compute_cap.replace('.', '')}" if gpu.compute_cap else "",
                    cores=gpu.sm_count, clock_ghz=gpu.max_sm_clock_mhz / 1000.0, l1d_kb=0.0, l2_kb=0.0, l3_kb=0.0, memory_gib=gpu.memory_mib / 1024,
                    compute_capability=gpu.compute_cap, tvm={"arch": f"sm_{gpu.compute_cap.replace('.', '')}"} if gpu.compute_cap else {},
                    source="detected on this host (not in the catalog: SMs and caches as the driver reports them)")


def detect_gpu_platform() -> Platform | None:
    gpu = measured_gpu(detect_gpus())
    return gpu_platform(gpu) if gpu is not None else None
