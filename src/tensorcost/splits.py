"""Train/test split strategies. Pure and deterministic given a seed.

Assignment hashes stable keys (task id, program id) with the seed, so the same program falls
on the same side on every target: records measured on several targets stay aligned.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

STRATEGIES = ("within_task", "by_task")


class SplitError(ValueError):
    pass


def _unit_hash(key: str, seed: int) -> float:
    h = hashlib.blake2b(f"{seed}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def assign_test(
    strategy: str,
    task_ids: Sequence[str],
    program_ids: Sequence[str],
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Boolean mask of test rows.

    - within_task: a random `test_fraction` of each task's programs is held out (random by hash,
      not TenSet's "first 10% of the file").
    - by_task: whole tasks are held out; no task appears on both sides.
    """
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if strategy == "within_task":
        return np.array([_unit_hash(f"{t}|{p}", seed) < test_fraction for t, p in zip(task_ids, program_ids)], dtype=bool)
    if strategy == "by_task":
        tasks = sorted(set(task_ids))
        ranked = sorted(tasks, key=lambda t: _unit_hash(t, seed))
        # At least one task on each side whenever there are two or more.
        n_test = min(len(tasks) - 1, max(1, round(len(tasks) * test_fraction))) if len(tasks) > 1 else 0
        test_tasks = set(ranked[:n_test])
        return np.array([t in test_tasks for t in task_ids], dtype=bool)
    raise SplitError(f"unknown split strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
