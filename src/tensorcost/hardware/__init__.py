"""Hardware: the platform catalog, host detection, and the targets (platform + code-generation
variant) records are measured on. Pure Python: no TVM import here.

- `host_platform()`: this machine's CPU platform (archspec names its microarchitecture);
- `host_targets()`: every target measurable here (the CPU variants it supports, a detected GPU);
- `resolve_target(id)`: a target this host can measure (`auto` picks the first preferred variant);
- `describe_target(id)`: any target of a catalog platform or of this host (for featurizing).
"""

from __future__ import annotations

from .catalog import (
    HARDWARE_FEATURE_NAMES,
    Platform,
    Target,
    UnknownTargetError,
    Variant,
    catalog_target,
    catalog_version,
    cpu_isa_variants,
    get_platform,
    make_target,
    platforms,
    split_target_id,
    variant,
)
from .detect import CpuInfo, GpuInfo, detect_cpu, detect_cpu_platform, detect_gpu_platform, detect_gpus, parse_cpuinfo



def supports(info: CpuInfo, v: Variant) -> bool:
    """Whether a CPU with these flags runs code of variant `v` (the archspec level's features)."""
    if v.kind != "cpu" or info.machine != "x86_64":
        return False
    import archspec.cpu as ac

    return v.requires is None or ac.TARGETS[v.requires].features <= info.flags


def cpu_targets(info: CpuInfo, platform: Platform) -> dict[str, Target]:
    """Every `<isa>-t<threads>` variant a CPU supports, on 1..cores threads."""
    out = {}
    for isa in cpu_isa_variants():
        for threads in range(1, platform.cores + 1):
            v = variant(f"{isa}-t{threads}")
            if supports(info, v):
                t = Target(platform, v)
                out[t.id] = t
    return out


def host_platform() -> Platform:
    return detect_cpu_platform()


def host_targets() -> dict[str, Target]:
    """Targets measurable on this host: the CPU variants it supports and a detected GPU."""
    out = cpu_targets(detect_cpu(), host_platform())
    gpu = detect_gpu_platform()
    if gpu is not None and gpu.cores:
        t = Target(gpu, variant("cuda"))
        out[t.id] = t
    return out


available_targets = host_targets


def no_variant_reason(info: CpuInfo, platform: Platform) -> str:
    levels = ", ".join(cpu_isa_variants())
    return (f"this host ({info.machine}, {platform.microarch}, {info.model_name or 'unknown model'}) supports none of the catalog's "
            f"code-generation variants ({levels}: x86-64 only); tensorcost measures x86-64 CPUs with SSE4.2 and NVIDIA GPUs")


def auto_target(preferred_variants: list[str]) -> Target:
    """This host's platform with the first of `preferred_variants` it supports."""
    targets = host_targets()
    platform = host_platform()
    for v in preferred_variants:
        tid = f"{platform.id}.{v}"
        if tid in targets:
            return targets[tid]
    if not any(t.kind == "cpu" for t in targets.values()):
        raise UnknownTargetError(no_variant_reason(detect_cpu(), platform))
    raise UnknownTargetError(
        f"none of the preferred variants {preferred_variants} runs on this host ({platform.id}); it supports: "
        + ", ".join(sorted(t.variant.id for t in targets.values() if t.platform.id == platform.id))
    )


def resolve_target(target_id: str, preferred_variants: list[str] | None = None) -> Target:
    """A target this host can measure: `auto` (the host platform with the first preferred
    variant it supports) or an explicit id, refused in one line if this host cannot run it."""
    if target_id == "auto":
        return auto_target(preferred_variants or [f"{isa}-t1" for isa in cpu_isa_variants()])
    if target_id.startswith("host."):  # this machine's platform, whatever its id
        target_id = f"{host_platform().id}.{target_id[len('host.'):]}"
    split_target_id(target_id)
    targets = host_targets()
    if target_id in targets:
        return targets[target_id]
    valid = ", ".join(sorted(targets)) or "(none)"
    platform_id = target_id.split(".")[0]
    if platform_id != host_platform().id and platform_id in platforms():
        hint = f" ({platform_id} is another machine of the catalog: its records can be studied here, not measured)"
    else:
        hint = ""
    raise UnknownTargetError(f"target {target_id!r} cannot be measured on this host ({host_platform().id}){hint}; valid here: {valid}")


def describe_target(target_id: str) -> Target:
    """Any target of a catalog platform or of this host (featurizing needs no measurement)."""
    targets = host_targets()
    if target_id in targets:
        return targets[target_id]
    return catalog_target(target_id)


def codegen_target(target_id: str) -> Target:
    """A target code can be generated for here: a measurable one, or any catalog target
    (sampling and building programs need no device: LLVM and nvcc cross-compile)."""
    try:
        return resolve_target(target_id)
    except UnknownTargetError:
        return catalog_target(target_id)


__all__ = [
    "HARDWARE_FEATURE_NAMES", "CpuInfo", "GpuInfo", "Platform", "Target", "UnknownTargetError", "Variant",
    "auto_target", "available_targets", "catalog_target", "catalog_version", "codegen_target", "cpu_targets", "describe_target",
    "detect_cpu", "detect_gpus", "get_platform", "host_platform", "host_targets", "make_target", "parse_cpuinfo", "platforms",
    "resolve_target", "split_target_id", "supports", "variant",
]
