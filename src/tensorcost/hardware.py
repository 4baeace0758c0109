"""Hardware catalog and host detection.

A *target id* names one measurable hardware configuration (``cpu-avx512-t2``: the host CPU,
code generated for AVX-512, run on 2 threads). It maps to TVM target options and to the
numeric hardware features a cost model sees. Pure Python: no TVM import here.
"""

from __future__ import annotations

import functools
import os
import re
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
        """The dict that ``tvm.target.Target`` accepts (CLI-style strings are refused by TVM 0.27)."""
        cfg: dict = {"kind": "llvm" if self.kind == "cpu" else "cuda", "num-cores": self.threads}
        if self.mcpu:
            cfg["mcpu"] = self.mcpu
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


def available_targets() -> dict[str, HardwareTarget]:
    """Targets that can be measured on this host."""
    return host_targets()


def get_target(target_id: str) -> HardwareTarget:
    """Resolve a measurable target id, refusing unknown ids or variants the host cannot run."""
    targets = available_targets()
    if target_id not in targets:
        valid = ", ".join(sorted(targets)) or "(none detected)"
        known = catalog_platforms()
        hint = f" ({target_id} is a catalog platform: its records can be imported, not measured here)" if target_id in known else ""
        raise UnknownTargetError(
            f"unknown or unsupported target {target_id!r} on this host{hint}; valid targets: {valid}"
        )
    return targets[target_id]


def describe_target(target_id: str) -> HardwareTarget:
    """Any known target: a host variant or a catalog platform (for featurizing imported records)."""
    known = {**catalog_platforms(), **available_targets()}
    if target_id not in known:
        raise UnknownTargetError(f"unknown target {target_id!r}; known: {', '.join(sorted(known))}")
    return known[target_id]
