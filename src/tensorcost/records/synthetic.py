"""Synthetic TenSet-format records: the names that mark them (`synthetic-<platform>`), one
predicate every guard uses (the importer's labelling, the registry's refusal). The files
themselves are written by `tensorcost.synthetic_tenset` (`tensorcost dataset synth-tenset`)."""

from __future__ import annotations

SYNTHETIC_PREFIX = "synthetic-"


def is_synthetic_target(target_id: str | None) -> bool:
    """Whether a target id (or slot, or platform id) names synthetic data (`synthetic-...`): the one
    predicate every guard uses (the importer's labelling, the registry's refusal)."""
    return bool(target_id) and str(target_id).strip().lower().startswith(SYNTHETIC_PREFIX)


def synthetic_platform(source_target: str) -> str:
    """`zen5-2c.avx2-t1` -> `synthetic-zen5-2c` (TenSet's platform directory; imports as `<it>.tenset`)."""
    platform = str(source_target).partition(".")[0]
    return platform if is_synthetic_target(platform) else SYNTHETIC_PREFIX + platform
