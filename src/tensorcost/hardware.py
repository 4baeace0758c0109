"""Hardware catalog and host detection.

A *target id* names one measurable hardware configuration (``cpu-avx512-t2``: the host CPU,
code generated for AVX-512, run on 2 threads; ``cuda-h100``: an NVIDIA H100 found by
nvidia-smi). It maps to TVM target options and to the numeric hardware features a cost model
sees. Pure Python: no TVM import here.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

HARDWARE_FEATURE_NAMES = (
    "is_gpu",
    "vector_bytes",
    "threads",
    "physical_cores",
    "clock_ghz",
    "l1d_kb",
    "l2_kb",
    "l3_kb",
)


class UnknownTargetError(ValueError):
    """A target id that the catalog does not know or the host cannot run."""


@dataclass(frozen=True)
class HardwareTarget:
    target_id: str
    kind: str  # "cpu" | "gpu"
    vector_bytes: int
    threads: int
    physical_cores: int
    clock_ghz: float
    l1d_kb: float
    l2_kb: float
    l3_kb: float
    mcpu: str | None = None
    cpu_model: str = ""
    tvm_options: dict = field(default_factory=dict)

    def tvm_target_config(self) -> dict:
        """The dict that ``tvm.target.Target`` accepts (CLI-style strings are refused by TVM 0.27).

        CPU: LLVM with `mcpu` and `num-cores`; GPU: CUDA with the catalog's options (arch,
        thread and shared-memory limits); the cuda kind has no `num-cores`."""
        if self.kind == "cpu":
            cfg: dict = {"kind": "llvm", "num-cores": self.threads}
            if self.mcpu:
                cfg["mcpu"] = self.mcpu
        else:
            cfg = {"kind": "cuda"}
        cfg.update(self.tvm_options)
        return cfg

    def features(self) -> list[float]:
        return [
            1.0 if self.kind == "gpu" else 0.0,
            float(self.vector_bytes),
            float(self.threads),
            float(self.physical_cores),
            float(self.clock_ghz),
            float(self.l1d_kb),
            float(self.l2_kb),
            float(self.l3_kb),
        ]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HostInfo:
    model_name: str
    flags: frozenset[str]
    logical_cpus: int
    clock_ghz: float
    physical_cores: int
    l1d_kb: float
    l2_kb: float
    l3_kb: float


def _catalog() -> dict:
    text = resources.files("tensorcost").joinpath("data/hardware.yaml").read_text()
    return yaml.safe_load(text)


def _parse_size_kb(text: str) -> float:
    """'96 KiB (2 instances)' -> 96.0 ; '4 MiB' -> 4096.0 (per-instance total as reported)."""
    m = re.match(r"\s*([\d.]+)\s*([KMG])i?B?", text)
    if not m:
        return 0.0
    scale = {"K": 1, "M": 1024, "G": 1024 * 1024}[m.group(2)]
    return float(m.group(1)) * scale


def parse_cpuinfo(cpuinfo: str) -> tuple[str, frozenset[str], int, float]:
    """Model name, flag set, logical CPU count and MHz-derived clock from /proc/cpuinfo text.

    (Physical cores come from `physical_cores_from_cpuinfo`.)"""
    model = ""
    flags: frozenset[str] = frozenset()
    n = 0
    mhz = 0.0
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            n += 1
        elif key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        elif key == "cpu MHz" and not mhz:
            try:
                mhz = float(value)
            except ValueError:
                pass
    return model, flags, n, mhz / 1000.0


def physical_cores_from_cpuinfo(cpuinfo: str) -> int:
    """Distinct (physical id, core id) pairs; 0 when the kernel does not report them."""
    pairs, phys = set(), "0"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            pairs.add((phys, value.strip()))
    return len(pairs)


@functools.lru_cache(maxsize=1)
def detect_host() -> HostInfo:
    """Read the host CPU from /proc/cpuinfo and sysfs cache sizes (Linux x86-64)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    model, flags, n, ghz = parse_cpuinfo(text)
    caches = {"l1d": 0.0, "l2": 0.0, "l3": 0.0}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    if base.exists():
        for idx in sorted(base.glob("index*")):
            try:
                level = (idx / "level").read_text().strip()
                ctype = (idx / "type").read_text().strip()
                size = _parse_size_kb((idx / "size").read_text().strip())
            except OSError:
                continue
            if level == "1" and ctype == "Data":
                caches["l1d"] = size
            elif level == "2":
                caches["l2"] = size
            elif level == "3":
                caches["l3"] = size
    return HostInfo(
        physical_cores=physical_cores_from_cpuinfo(text) or n or (os.cpu_count() or 1),
        model_name=model,
        flags=flags,
        logical_cpus=n or (os.cpu_count() or 1),
        clock_ghz=ghz,
        l1d_kb=caches["l1d"],
        l2_kb=caches["l2"],
        l3_kb=caches["l3"],
    )


def host_targets(host: HostInfo | None = None) -> dict[str, HardwareTarget]:
    """Every `cpu-<isa>-t<threads>` variant the host can run, keyed by target id."""
    host = host or detect_host()
    out: dict[str, HardwareTarget] = {}
    for isa, spec in _catalog()["host"]["isa_variants"].items():
        if not set(spec["required_flags"]) <= host.flags:
            continue
        for threads in range(1, host.logical_cpus + 1):
            tid = f"cpu-{isa}-t{threads}"
            out[tid] = HardwareTarget(
                target_id=tid,
                kind="cpu",
                vector_bytes=int(spec["vector_bytes"]),
                threads=threads,
                physical_cores=host.physical_cores,
                clock_ghz=host.clock_ghz,
                l1d_kb=host.l1d_kb,
                l2_kb=host.l2_kb,
                l3_kb=host.l3_kb,
                mcpu=spec["mcpu"],
                cpu_model=host.model_name,
            )
    return out


def catalog_platforms() -> dict[str, HardwareTarget]:
    """Published platforms (TenSet's six): their records can be featurized, not measured here."""
    out = {}
    for tid, spec in (_catalog().get("platforms") or {}).items():
        out[tid] = HardwareTarget(
            target_id=tid, kind=spec["kind"], vector_bytes=int(spec["vector_bytes"]),
            threads=int(spec["physical_cores"]), physical_cores=int(spec["physical_cores"]),
            clock_ghz=float(spec["clock_ghz"]), l1d_kb=float(spec["l1d_kb"]), l2_kb=float(spec["l2_kb"]),
            l3_kb=float(spec["l3_kb"]), mcpu=None, cpu_model=spec["model"],
        )
    return out


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as nvidia-smi reports it (0 / "" where it does not)."""

    index: int
    name: str
    memory_mib: float = 0.0
    compute_cap: str = ""
    max_sm_clock_mhz: float = 0.0
    driver_version: str = ""


# Fields asked of `nvidia-smi --query-gpu=... --format=csv,noheader`, in this order.
NVIDIA_SMI_FIELDS = ("index", "name", "memory.total", "compute_cap", "clocks.max.sm", "driver_version")


def _leading_number(text: str) -> float:
    """'81559 MiB' -> 81559.0 ; '1980 MHz' -> 1980.0 ; '[N/A]' -> 0.0"""
    m = re.match(r"\s*([\d.]+)", text)
    return float(m.group(1)) if m else 0.0


def parse_nvidia_smi(text: str, fields: tuple[str, ...] = NVIDIA_SMI_FIELDS) -> list[GpuInfo]:
    """GPUs from `nvidia-smi --query-gpu=<fields> --format=csv,noheader[,nounits]` output.

    Lines that do not have one value per field are skipped (warnings, blank lines)."""
    gpus = []
    for line in text.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(fields) or not values[0].isdigit():
            continue
        row = dict(zip(fields, values))
        cap = row.get("compute_cap", "")
        gpus.append(
            GpuInfo(
                index=int(row["index"]),
                name=row.get("name", ""),
                memory_mib=_leading_number(row.get("memory.total", "")),
                compute_cap=cap if re.fullmatch(r"\d+\.\d+", cap) else "",
                max_sm_clock_mhz=_leading_number(row.get("clocks.max.sm", "")),
                driver_version="" if "N/A" in row.get("driver_version", "N/A") else row["driver_version"],
            )
        )
    return gpus


def _query_nvidia_smi(fields: tuple[str, ...]) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def detect_gpus() -> tuple[GpuInfo, ...]:
    """The NVIDIA GPUs of this host (empty when nvidia-smi is missing or fails).

    Older drivers do not know every field (`compute_cap`): then only index and name are asked."""
    text = _query_nvidia_smi(NVIDIA_SMI_FIELDS)
    if text is not None:
        return tuple(parse_nvidia_smi(text))
    minimal = ("index", "name")
    text = _query_nvidia_smi(minimal)
    return tuple(parse_nvidia_smi(text, minimal)) if text is not None else ()


def _measured_gpu(gpus: tuple[GpuInfo, ...] | list[GpuInfo]) -> GpuInfo | None:
    """The GPU a measurement runs on: TVM's device 0, i.e. the first of CUDA_VISIBLE_DEVICES when
    it names indices (nvidia-smi lists every GPU whatever that variable says), else the first."""
    if not gpus:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.isdigit():
        return next((g for g in gpus if g.index == int(visible)), None)
    if visible == "" and "CUDA_VISIBLE_DEVICES" in os.environ:
        return None  # CUDA_VISIBLE_DEVICES="" hides every GPU
    return gpus[0]


def _gpu_target(tid: str, spec: dict, model: str | None = None) -> HardwareTarget:
    sms = int(spec["physical_cores"])
    return HardwareTarget(
        target_id=tid, kind="gpu", vector_bytes=int(spec["vector_bytes"]), threads=sms, physical_cores=sms,
        clock_ghz=float(spec["clock_ghz"]), l1d_kb=float(spec["l1d_kb"]), l2_kb=float(spec["l2_kb"]),
        l3_kb=float(spec.get("l3_kb", 0)), mcpu=None, cpu_model=model or spec["model"], tvm_options=dict(spec["tvm"]),
    )


def catalog_gpus() -> dict[str, HardwareTarget]:
    """Every GPU of the catalog, present or not (code for it can be generated anywhere)."""
    return {tid: _gpu_target(tid, spec) for tid, spec in (_catalog().get("gpus") or {}).items()}


def match_gpu(name: str) -> str | None:
    """The catalog target id whose `match` pattern finds `name` (first entry wins), or None."""
    for tid, spec in (_catalog().get("gpus") or {}).items():
        if re.search(spec["match"], name, flags=re.IGNORECASE):
            return tid
    return None


def gpu_targets(gpus: tuple[GpuInfo, ...] | list[GpuInfo] | None = None) -> dict[str, HardwareTarget]:
    """The `cuda-*` target of the GPU measurements run on, when the catalog knows it."""
    gpu = _measured_gpu(detect_gpus() if gpus is None else gpus)
    tid = match_gpu(gpu.name) if gpu else None
    if gpu is None or tid is None:
        return {}
    return {tid: _gpu_target(tid, _catalog()["gpus"][tid], model=gpu.name)}


def available_targets() -> dict[str, HardwareTarget]:
    """Targets that can be measured on this host: CPU variants and a detected catalog GPU."""
    return {**host_targets(), **gpu_targets()}


def codegen_target(target_id: str) -> HardwareTarget:
    """A target code can be generated for here: any measurable target, or a catalog GPU even
    when absent (sampling GPU programs, or building them, needs no GPU)."""
    gpus = catalog_gpus()
    if target_id in gpus and target_id not in available_targets():
        return gpus[target_id]
    return get_target(target_id)


def get_target(target_id: str) -> HardwareTarget:
    """Resolve a measurable target id, refusing unknown ids or variants the host cannot run."""
    targets = available_targets()
    if target_id not in targets:
        valid = ", ".join(sorted(targets)) or "(none detected)"
        if target_id in catalog_platforms():
            hint = f" ({target_id} is a catalog platform: its records can be imported, not measured here)"
        elif target_id in catalog_gpus():
            found = ", ".join(g.name for g in detect_gpus()) or "none"
            hint = f" ({target_id} is a catalog GPU that nvidia-smi does not report here; GPUs found: {found})"
        else:
            hint = ""
        raise UnknownTargetError(
            f"unknown or unsupported target {target_id!r} on this host{hint}; valid targets: {valid}"
        )
    return targets[target_id]


def describe_target(target_id: str) -> HardwareTarget:
    """Any known target: a host variant, a catalog GPU or a catalog platform (for featurizing
    imported records)."""
    known = {**catalog_platforms(), **catalog_gpus(), **available_targets()}
    if target_id not in known:
        raise UnknownTargetError(f"unknown target {target_id!r}; known: {', '.join(sorted(known))}")
    return known[target_id]
