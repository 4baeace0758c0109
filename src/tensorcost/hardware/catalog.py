"""The platform catalog (`data/catalog.yaml`): platforms, code-generation variants, targets.

A `Platform` is physical hardware; a `Variant` is how code is generated for it (ISA level and
threads, or CUDA); a `Target` is the pair, with id `<platform>.<variant>`. Pure Python.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field
from importlib import resources

import yaml

from ..errors import UserError
from ..names import is_name

# The hardware features every model sees, in order (`Target.features`).
HARDWARE_FEATURE_NAMES = (
    "is_gpu", "vector_bytes", "threads", "cores", "clock_ghz", "l1d_kb", "l2_kb", "l3_kb", "mem_bw_gbs",
    "isa_avx2", "isa_avx512", "isa_vnni", "isa_amx", "vendor_intel", "vendor_amd", "vendor_nvidia", "vendor_arm",
)

PLATFORM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
CPU_VARIANT = re.compile(r"^(?P<isa>[a-z0-9]+)-t(?P<threads>[1-9][0-9]*)$")


class UnknownTargetError(UserError):
    """A target or platform id that the catalog does not know, or that this host cannot run."""


@dataclass(frozen=True)
class Platform:
    """One physical machine (or a public specification of one)."""

    id: str
    kind: str  # "cpu" | "gpu"
    vendor: str  # GenuineIntel, AuthenticAMD, ARM, NVIDIA
    model_name: str
    microarch: str  # archspec's name (zen4, sapphirerapids, neoverse_n1) or the GPU architecture
    cores: int  # usable cores (CPU) or streaming multiprocessors (GPU)
    clock_ghz: float
    l1d_kb: float
    l2_kb: float
    l3_kb: float
    isa: tuple[str, ...] = ()
    mem_bw_gbs: float = 0.0
    memory_gib: float = 0.0
    compute_capability: str = ""
    match: str = ""  # GPUs: regex on the driver's device name
    tvm: dict = field(default_factory=dict)  # GPUs: options of tvm.target.Target
    fingerprint: dict = field(default_factory=dict)  # CPUs: cpu family / model / stepping
    source: str = ""

    @property
    def vector_bytes(self) -> int:
        """The widest vector the platform offers (what TenSet-generated code used)."""
        if self.kind == "gpu":
            return 4
        if "avx512f" in self.isa:
            return 64
        if "avx2" in self.isa or "avx" in self.isa:
            return 32
        return 16

    def to_dict(self) -> dict:
        d = asdict(self)
        d["isa"] = list(self.isa)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Platform":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UnknownTargetError(f"platform {d.get('id', '?')!r}: unknown fields {unknown}")
        return cls(**{**d, "isa": tuple(d.get("isa") or ()), "tvm": dict(d.get("tvm") or {}), "fingerprint": dict(d.get("fingerprint") or {})})


@dataclass(frozen=True)
class Variant:
    """How code is generated: a CPU ISA level on some threads, CUDA, or TenSet's own."""

    id: str  # "avx2-t1", "cuda", "tenset"
    isa: str
    kind: str  # "cpu" | "gpu" | "any"
    threads: int = 0  # 0: every core of the platform
    mcpu: str | None = None
    vector_bytes: int = 0  # 0: the platform's widest
    requires: str | None = None  # archspec microarchitecture whose features the CPU must have

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """A platform and a code-generation variant: what a record was measured on."""

    platform: Platform
    variant: Variant

    @property
    def id(self) -> str:
        return f"{self.platform.id}.{self.variant.id}"


    @property
    def kind(self) -> str:
        return self.platform.kind

    @property
    def threads(self) -> int:
        return self.variant.threads or self.platform.cores

    @property
    def vector_bytes(self) -> int:
        return self.variant.vector_bytes or self.platform.vector_bytes

    def tvm_target_config(self) -> dict:
        """The dict that `tvm.target.Target` accepts (CLI-style strings are refused by TVM 0.27).

        CPU: LLVM with the variant's `mcpu` and `num-cores`; GPU: CUDA with the platform's options
        (arch, thread and shared-memory limits); the cuda kind has no `num-cores`."""
        if self.kind == "cpu":
            cfg: dict = {"kind": "llvm", "num-cores": self.threads}
            if self.variant.mcpu:
                cfg["mcpu"] = self.variant.mcpu
            return cfg
        return {"kind": "cuda", **self.platform.tvm}

    def features(self) -> list[float]:
        """The platform's real description (HARDWARE_FEATURE_NAMES), as models see it: sizes and
        counts in log2 scale (a machine with 10x the cache is not 10x as different), flags 0/1."""
        p, isa = self.platform, set(self.platform.isa)
        vendor = p.vendor.lower()
        return [
            1.0 if p.kind == "gpu" else 0.0,
            math.log2(1.0 + self.vector_bytes),
            math.log2(1.0 + self.threads),
            math.log2(1.0 + p.cores),
            float(p.clock_ghz),
            math.log2(1.0 + p.l1d_kb),
            math.log2(1.0 + p.l2_kb),
            math.log2(1.0 + p.l3_kb),
            math.log2(1.0 + p.mem_bw_gbs),
            1.0 if "avx2" in isa else 0.0,
            1.0 if "avx512f" in isa else 0.0,
            1.0 if isa & {"avx512_vnni", "avx_vnni"} else 0.0,
            1.0 if "amx_tile" in isa else 0.0,
            1.0 if "intel" in vendor else 0.0,
            1.0 if "amd" in vendor else 0.0,
            1.0 if "nvidia" in vendor else 0.0,
            1.0 if vendor == "arm" else 0.0,
        ]

    def to_dict(self) -> dict:
        return {"target_id": self.id, "platform": self.platform.to_dict(), "variant": self.variant.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        return cls(Platform.from_dict(d["platform"]), Variant(**d["variant"]))


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    return yaml.safe_load(resources.files("tensorcost").joinpath("data/catalog.yaml").read_text())


def catalog_version() -> int:
    return int(_raw()["catalog_version"])


def isa_features() -> tuple[str, ...]:
    return tuple(_raw()["isa_features"])


def platforms() -> dict[str, Platform]:
    """Every platform of the catalog, by id."""
    return {pid: Platform.from_dict({"id": pid, **spec}) for pid, spec in (_raw().get("platforms") or {}).items()}


SYNTHETIC_PREFIX = "synthetic-"  # records made from another platform's programs (records.synthetic): its hardware, never its name


def get_platform(platform_id: str) -> Platform:
    known = platforms()
    source = platform_id[len(SYNTHETIC_PREFIX):] if platform_id.startswith(SYNTHETIC_PREFIX) else None
    if source in known:  # synthetic scale data is featurized with the hardware it was copied from
        spec = {**known[source].to_dict(), "id": platform_id, "source": f"synthetic records copied from {source}'s measurements"}
        return Platform.from_dict(spec)
    if platform_id not in known:
        raise UnknownTargetError(f"unknown platform {platform_id!r}; the catalog has: {', '.join(sorted(known))}")
    return known[platform_id]


def variant(variant_id: str) -> Variant:
    """A variant from its id: `<isa>-t<threads>` (CPU), `cuda`, `tenset`."""
    specs = _raw()["variants"]
    m = CPU_VARIANT.fullmatch(variant_id)
    isa, threads = (m.group("isa"), int(m.group("threads"))) if m else (variant_id, 0)
    spec = specs.get(isa)
    if spec is None or (m is None) != (spec["kind"] != "cpu"):
        cpu = ", ".join(f"{k}-t<threads>" for k, s in specs.items() if s["kind"] == "cpu")
        other = ", ".join(k for k, s in specs.items() if s["kind"] != "cpu")
        raise UnknownTargetError(f"unknown code-generation variant {variant_id!r}; valid: {cpu}, {other}")
    return Variant(id=variant_id, isa=isa, kind=spec["kind"], threads=threads, mcpu=spec.get("mcpu"),
                   vector_bytes=int(spec.get("vector_bytes", 0)), requires=spec.get("requires"))


def cpu_isa_variants() -> list[str]:
    """The CPU ISA names, widest first (catalog order)."""
    return [k for k, s in _raw()["variants"].items() if s["kind"] == "cpu"]


def split_target_id(target_id: str) -> tuple[str, str]:
    """'zen4-2c.avx2-t1' -> ('zen4-2c', 'avx2-t1'), refusing anything else (ids become file and
    registry names: nothing but [a-z0-9_-] and one dot)."""
    platform_id, dot, variant_id = str(target_id).partition(".")

    if not dot or not is_name("platform id", platform_id) or not is_name("variant id", variant_id):
        raise UnknownTargetError(
            f"malformed target id {target_id!r}: expected <platform>.<variant> such as 'zen4-2c.avx2-t1' (see `tensorcost targets`)"
        )
    return platform_id, variant_id


def make_target(platform: Platform, variant_id: str) -> Target:
    """`platform` with a variant, refusing variants of the other kind or more threads than cores."""
    v = variant(variant_id)
    if v.kind not in ("any", platform.kind):
        raise UnknownTargetError(f"variant {variant_id!r} is for {v.kind} platforms; {platform.id} is a {platform.kind}")
    if v.threads > platform.cores:
        raise UnknownTargetError(f"variant {variant_id!r} asks for {v.threads} threads; {platform.id} has {platform.cores} cores")
    return Target(platform, v)


def catalog_target(target_id: str) -> Target:
    """A target of a catalog platform (whatever machine runs this)."""
    platform_id, variant_id = split_target_id(target_id)
    return make_target(get_platform(platform_id), variant_id)
