"""Training data for the attention model from a store too large to hold: task groups streamed a
fragment at a time through a shuffle buffer (a `torch.utils.data.IterableDataset`).

The pair loss compares programs within a task, so what streams is *chunks*: up to
`programs_per_group` programs of one task, shuffled within the task; `groups_per_batch` chunks make
one optimizer step. Fragments come in a shuffled order (split between DDP ranks and DataLoader
workers by fragment), their chunks go through a buffer of `buffer_chunks` from which steps draw at
random: memory is the buffer and one fragment, never the dataset. Everything is seeded by
(seed, epoch): the same stream every run.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd


def running_stats(view, column_slice: slice) -> tuple[list, list]:
    """Mean and standard deviation (std <= 1e-6 -> 1) of flat columns over a store view, one
    fragment at a time (float64 sums; Chan's parallel update)."""
    n, mean, m2 = 0, None, None
    for part in view.iter_tables(("flat",)):
        x = part.flat[:, column_slice].astype(np.float64)
        if not len(x):
            continue
        k, mu = len(x), x.mean(0)
        sq = ((x - mu) ** 2).sum(0)
        if mean is None:
            n, mean, m2 = k, mu, sq
            continue
        delta = mu - mean
        total = n + k
        mean = mean + delta * k / total
        m2 = m2 + sq + delta ** 2 * n * k / total
        n = total
    if mean is None:
        raise ValueError("no rows to compute statistics on")
    std = np.sqrt(m2 / n)
    return mean.tolist(), np.where(std > 1e-6, std, 1.0).tolist()


def _torch_iterable():
    from torch.utils.data import IterableDataset

    return IterableDataset


def shard(view, rank: int, world: int):
    """`rank`'s share of a view under DDP: every world-th ranking group (in the view's order), so
    shares differ by at most one task whatever the number of fragments (a slot's store is often
    one fragment: sharding fragments left the other ranks nothing to train on)."""
    if world <= 1:
        return view
    codes = pd.factorize(view.frame["slot"].astype(str) + "|" + view.frame["task_id"].astype(str))[0]
    return view.take(np.flatnonzero(codes % world == rank))


class GroupChunkStream(_torch_iterable()):
    """Steps from a store view, each a list of (prepared fragment, row indices of one chunk in it);
    see the module docstring. `prepare(table)`: what a step indexes, made once a fragment (the
    model's inputs; default: the fragment's FeatureTable). `rank` / `world`: this process's share
    of the fragments under DDP."""

    def __init__(self, view, programs_per_group: int, groups_per_batch: int, buffer_chunks: int = 512, seed: int = 0, epoch: int = 0,
                 rank: int = 0, world: int = 1, prepare=None):
        super().__init__()
        self.view, self.chunk, self.per_step, self.buffer_chunks = shard(view, rank, world), programs_per_group, groups_per_batch, max(buffer_chunks, groups_per_batch)
        self.seed, self.epoch, self.rank, self.world = seed, epoch, rank, world
        self.prepare = prepare

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _fragments(self) -> list[int]:
        from torch.utils.data import get_worker_info

        frags = np.unique(np.asarray(self.view.fragment))  # the fragments holding this rank's groups
        # a rank's groups are fixed (so every rank knows every rank's steps); the fragments' order is the epoch's
        mine = np.random.default_rng((self.seed, self.epoch, self.rank)).permutation(frags)
        info = get_worker_info()
        return list(mine[info.id::info.num_workers] if info is not None else mine)

    def __iter__(self) -> Iterator[list]:
        rng = np.random.default_rng((self.seed, self.epoch, self.rank))
        buffer: list = []  # (table, rows of one chunk)
        for frag in self._fragments():
            table = self.view.take(np.flatnonzero(np.asarray(self.view.fragment) == frag)).materialize()
            prepared = self.prepare(table) if self.prepare is not None else table
            for _, rows in table.iter_groups():
                perm = rng.permutation(rows)
                for i in range(0, len(perm), self.chunk):
                    if len(perm[i:i + self.chunk]) > 1:  # a single program has no pair
                        buffer.append((prepared, perm[i:i + self.chunk]))
            while len(buffer) >= self.buffer_chunks:
                yield self._step(buffer, rng)
        while buffer:
            yield self._step(buffer, rng)

    def _step(self, buffer: list, rng) -> list:
        picked = []
        for _ in range(min(self.per_step, len(buffer))):
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            picked.append(buffer.pop())
        return picked
