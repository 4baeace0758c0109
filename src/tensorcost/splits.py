"""Train/test split strategies. Pure and deterministic given a seed.

Assignment hashes stable keys (task id, program id) with the seed, so the same program falls
on the same side on every target: records measured on several targets stay aligned.

- `within_task`: a random `test_fraction` of each task's programs is held out (random by hash,
  not TenSet's "first 10% of each file").
- `by_task`: whole tasks are held out; no task appears on both sides.
- `by_network`: every task used by a held-out network is held out (TenSet and TLP evaluate on
  ResNet-50, MobileNet-V2, ResNeXt-50 and BERT); a task shared with a training network goes to
  the test side, so nothing of a held-out network is seen in training.
- `by_family`: the same for whole architecture families (`zoo.ARCHITECTURE_FAMILIES`): every
  network of a held-out family is out at once, so the test operators are structures training
  never saw (a user's own network), not cousins of training networks.
- `by_hardware`: every record of the held-out target is test, every other target's is train
  (the transfer setting). Every bundled program is measured on every platform, so its test
  programs are on the training side too, measured on other machines.
- `by_hardware+<split>` (e.g. `by_hardware+within_task`, `by_hardware+by_family`): the held-out
  target's test side of `<split>`, trained on the other targets' training sides of the same
  split: programs (or networks) unseen on hardware unseen, what a user's own network meets on
  their own machine. Splits are keyed by task and program, never by target, so no test program
  is trained on anywhere.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import UserError
from .metrics import factorize
from .zoo import architecture_family

STRATEGIES = ("within_task", "by_task", "by_network", "by_family", "by_hardware")
PROGRAM_SPLITS = ("within_task", "by_task", "by_network", "by_family")  # the splits keyed by task, program or network (not by target)
HARDWARE_AND = "by_hardware+"
# by_hardware composed with a program split: the hardware and the programs are unseen at once
HARDWARE_COMPOSED = tuple(HARDWARE_AND + s for s in PROGRAM_SPLITS)
ALL_STRATEGIES = STRATEGIES + HARDWARE_COMPOSED

# TenSet/TLP's held-out networks, as family names of the zoo.
DEFAULT_TEST_NETWORKS = ("resnet50", "mobilenet_v2", "resnext50_32x4d", "bert_base")
# Architecture families held out by `by_family`: transformers, and every structure TenSet's zoo lacks.
DEFAULT_TEST_FAMILIES = ("transformer", "senet", "unet", "rnn", "video3d", "swin", "detection")


class SplitError(UserError, ValueError):
    """A split the data or the name cannot make (a one-line message: the CLI prints it alone)."""


def _unit_hash(key: str, seed: int) -> float:
    h = hashlib.blake2b(f"{seed}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def hardware_split(strategy: str) -> tuple[bool, str | None]:
    """(does `strategy` hold out a target whole, the program split it applies or None):
    'within_task' -> (False, 'within_task'), 'by_hardware' -> (True, None),
    'by_hardware+by_family' -> (True, 'by_family'). An unknown name raises SplitError."""
    if strategy == "by_hardware":
        return True, None
    if strategy in PROGRAM_SPLITS:
        return False, strategy
    if strategy.startswith(HARDWARE_AND) and strategy[len(HARDWARE_AND):] in PROGRAM_SPLITS:
        return True, strategy[len(HARDWARE_AND):]
    raise SplitError(f"unknown split strategy {strategy!r}; valid: {', '.join(ALL_STRATEGIES)}")


def network_family(network: str) -> str:
    """'resnet50-b1-112' -> 'resnet50' (a variant's family)."""
    return network.split("-")[0]


def assign_test(
    strategy: str,
    task_ids: Sequence[str],
    program_ids: Sequence[str],
    test_fraction: float = 0.2,
    seed: int = 0,
    *,
    networks: Sequence[str] | None = None,
    test_networks: Sequence[str] = DEFAULT_TEST_NETWORKS,
    test_families: Sequence[str] = DEFAULT_TEST_FAMILIES,
    targets: Sequence[str] | None = None,
    test_target: str | None = None,
) -> np.ndarray:
    """Boolean mask of test rows. `networks` holds each row's JSON {network: weight} (by_network);
    `targets` each row's target id (by_hardware)."""
    if strategy.startswith(HARDWARE_AND):  # the held-out target's rows on the program split's test side
        _, inner = hardware_split(strategy)
        held = assign_test("by_hardware", task_ids, program_ids, targets=targets, test_target=test_target)
        return held & assign_test(inner, task_ids, program_ids, test_fraction, seed, networks=networks,
                                  test_networks=test_networks, test_families=test_families)
    if strategy == "within_task":
        _check_fraction(test_fraction)
        return np.fromiter((_unit_hash(f"{t}|{p}", seed) < test_fraction for t, p in zip(task_ids, program_ids)), dtype=bool, count=len(task_ids))
    if strategy == "by_task":
        _check_fraction(test_fraction)
        # one hash a task, one vectorized lookup a row: millions of rows hold no Python list
        inverse, tasks = factorize(task_ids)
        ranked = sorted(range(len(tasks)), key=lambda i: _unit_hash(str(tasks[i]), seed))
        # At least one task on each side whenever there are two or more.
        n_test = min(len(tasks) - 1, max(1, round(len(tasks) * test_fraction))) if len(tasks) > 1 else 0
        is_test = np.zeros(len(tasks), dtype=bool)
        is_test[ranked[:n_test]] = True
        return is_test[inverse.reshape(-1)]
    if strategy in ("by_network", "by_family"):
        if networks is None:
            raise SplitError(f"{strategy} needs each row's networks")
        if strategy == "by_network":
            held, key = set(test_networks), network_family
        else:
            held, key = set(test_families), architecture_family
        # one decision per distinct networks string (a task's), one vectorized lookup a row
        codes, uniques = factorize(networks)
        held_net = np.array([any(key(n) in held or n in held for n in json.loads(nets)) for nets in uniques], dtype=bool)
        return held_net[codes] if len(codes) else np.zeros(0, dtype=bool)
    if strategy == "by_hardware":
        if targets is None or test_target is None:
            raise SplitError("by_hardware needs each row's target and the held-out target")
        return (targets.astype(str) == test_target).to_numpy() if isinstance(targets, pd.Series) else np.asarray(targets) == test_target
    raise SplitError(f"unknown split strategy {strategy!r}; valid: {', '.join(ALL_STRATEGIES)}")


def evaluation_set_id(data_hash: str, strategy: str, test_fraction: float, seed: int) -> str:
    """The name of a split's test side: splits are deterministic, so the data's hash and the split
    params name its rows. Models whose cards carry the same id were scored on the same programs
    (the promotion gate compares only those): the train stage and a pruned variant's, whose test
    side is the unpruned one, write it through here alike."""
    return f"{data_hash}:{strategy}:{test_fraction}:{seed}"


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test_fraction must be in (0, 1), got {test_fraction}")
