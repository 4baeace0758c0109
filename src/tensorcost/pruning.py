"""Dataset pruning: which measured programs a model needs to train on.

One contract for every strategy: (a pool of measured programs as a feature table, the kept
fraction, a seed, a `Scout` for the strategies that look through a model) -> the kept record ids.
The pool is what may be pruned (a slot's records, or a split's training side); test records are
never handed to a strategy.

Strategies (docs/DATASET.md, "Pruned variants"):
- `random`: programs sampled uniformly within every task (the floor; run it with several seeds);
- `random_tasks`: whole tasks sampled, all their programs kept (task-level pruning; TenSet found
  cutting programs per task safer than cutting tasks: this measures it here);
- `attention_loss`: the paper's attention-inspired pruning, read as "keep what the attention
  model still has to learn": a scout attention model trained on the pool scores every program,
  each program's importance is its mean logistic pair loss against the other programs of its task,
  and programs are sampled per task with probability proportional to it (sampling, not the top-k:
  the highest losses alone are mostly measurement noise once the budget is small);
- `kcenter`: a diversity coreset: per task, k-center greedy on the scout's program embeddings
  (the head's input), starting at the program nearest the task's mean embedding;
- `uncertainty`: active learning in the line of BALTO/TCL: per task a few random programs, then
  rounds that add the programs a bootstrap ensemble of LightGBM models disagrees on most. It sees
  only the labels of what it has kept so far: the measurement budget of a new platform.

Every strategy except `random_tasks` keeps the same number of programs per task:
`max(2, round(fraction * n))` (at most n), so a task always keeps a pair to rank.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import UserError
from .features import FeatureTable, per_task_labels
from .evaluation import ModelSpec
from .models import family_class
from .records.schema import COLUMNS, RECORDS_SCHEMA
from .safeio import atomic_output

STRATEGIES = ("random", "random_tasks", "attention_loss", "kcenter", "uncertainty")


@dataclass
class Scout:
    """The model a strategy looks through (a family with program embeddings: the attention
    model by default), trained once per pool on demand. `family` / `params`: the scout preset's
    (prune.scout in params.yaml); `uncertainty`'s committee is of `ensemble_family` (a tree
    model: LightGBM by default) with `ensemble_params` (prune.ensemble)."""

    params: dict = field(default_factory=dict)
    ensemble_params: dict = field(default_factory=dict)
    family: str = "attention"
    ensemble_family: str = "lightgbm"
    log: Callable[[str], None] | None = None
    _model: object = None
    _pool_key: tuple | None = None

    def model(self, pool: FeatureTable):
        if not family_class(self.family).embeds:
            raise UserError(f"the pruning scout must be a family with program embeddings; {self.family} has none")
        key = (len(pool), tuple(pool.frame["record_id"].iloc[[0, -1]]) if len(pool) else ())
        if self._model is None or self._pool_key != key:
            m = ModelSpec(self.family, self.params).create(pool)
            m.fit(pool, log=self.log)
            self._model, self._pool_key = m, key
        return self._model


def kept_table(pool: FeatureTable, rows) -> FeatureTable:
    """The rows of `pool` a pruned dataset keeps, labelled from those rows alone (a label is the
    task's best kept latency over the program's): what was pruned away was never measured."""
    kept = pool.take(np.sort(np.asarray(rows, dtype=np.int64)))
    kept.frame["label"] = per_task_labels(kept.groups, kept.frame["latency_s"].to_numpy())
    return kept


def rows_of(pool: FeatureTable, record_ids) -> np.ndarray:
    """Row indices of `pool` whose record_id is in `record_ids`."""
    return np.flatnonzero(pool.frame["record_id"].isin(set(record_ids)).to_numpy())


def per_task_budget(n: int, fraction: float) -> int:
    return min(n, max(2, int(round(fraction * n))))


def _task_rows(pool: FeatureTable) -> dict[str, np.ndarray]:
    """Row indices of each ranking group (a task measured on one slot), in first-seen order."""
    groups = pool.groups
    order = np.argsort(groups, kind="stable")
    names, starts = np.unique(groups[order], return_index=True)
    parts = dict(zip(names, np.split(order, starts[1:])))
    return {g: parts[g] for g in dict.fromkeys(groups)}


def _check(fraction: float, strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise UserError(f"unknown pruning strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"pruning fraction {fraction!r} is not in (0, 1] (params.yaml's prune.percents are percentages, 1-100)")


def keep_random(pool: FeatureTable, fraction: float, seed: int, scout: Scout | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(rows, per_task_budget(len(rows), fraction), replace=False) for rows in _task_rows(pool).values()])


def keep_random_tasks(pool: FeatureTable, fraction: float, seed: int, scout: Scout | None = None) -> np.ndarray:
    by_task = _task_rows(pool)
    names = sorted(by_task)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(names), max(1, int(round(fraction * len(names)))), replace=False)
    return np.concatenate([by_task[names[i]] for i in chosen])


def pair_losses(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per program of one task: the mean logistic loss of its pairs with every program of a
    different label (a program ranked where it belongs has a small one)."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    sign = np.sign(y[:, None] - y[None, :])
    z = -sign * (s[:, None] - s[None, :])
    loss = np.where(sign != 0, np.logaddexp(0.0, z), 0.0)
    pairs = (sign != 0).sum(1)
    return loss.sum(1) / np.maximum(pairs, 1)


def keep_attention_loss(pool: FeatureTable, fraction: float, seed: int, scout: Scout | None = None) -> np.ndarray:
    if scout is None:
        raise UserError("attention_loss pruning needs a scout attention model")
    scores = scout.model(pool).predict(pool)
    labels = pool.labels
    rng = np.random.default_rng(seed)
    kept = []
    for rows in _task_rows(pool).values():
        imp = pair_losses(scores[rows], labels[rows]) + 1e-6
        kept.append(rng.choice(rows, per_task_budget(len(rows), fraction), replace=False, p=imp / imp.sum()))
    return np.concatenate(kept)


def kcenter_greedy(x: np.ndarray, k: int) -> list[int]:
    """k rows of `x` covering it: start nearest the mean, then repeatedly the row farthest from
    everything chosen (ties: the lower index)."""
    first = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
    chosen = [first]
    dist = ((x - x[first]) ** 2).sum(1)
    while len(chosen) < min(k, len(x)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, ((x - x[nxt]) ** 2).sum(1))
    return chosen


def keep_kcenter(pool: FeatureTable, fraction: float, seed: int, scout: Scout | None = None) -> np.ndarray:
    if scout is None:
        raise UserError("kcenter pruning needs a scout attention model")
    emb = scout.model(pool).embed(pool)
    emb = (emb - emb.mean(0)) / np.where(emb.std(0) > 1e-9, emb.std(0), 1.0)
    return np.concatenate([rows[kcenter_greedy(emb[rows], per_task_budget(len(rows), fraction))] for rows in _task_rows(pool).values()])


UNCERTAINTY_ROUNDS = 3
ENSEMBLE_SIZE = 4


def keep_uncertainty(pool: FeatureTable, fraction: float, seed: int, scout: Scout | None = None) -> np.ndarray:
    scout = scout or Scout()
    rng = np.random.default_rng(seed)
    by_task = _task_rows(pool)
    budget = {t: per_task_budget(len(r), fraction) for t, r in by_task.items()}
    kept = {t: list(rng.choice(r, min(budget[t], max(2, math.ceil(budget[t] / (UNCERTAINTY_ROUNDS + 1)))), replace=False)) for t, r in by_task.items()}
    params = {"objective": "regression", "num_boost_round": 100, "num_threads": 2, **scout.ensemble_params}
    for r in range(UNCERTAINTY_ROUNDS):
        measured = kept_table(pool, np.concatenate([np.asarray(v, dtype=np.int64) for v in kept.values()]))  # the labels it may see
        preds = []
        for m in range(ENSEMBLE_SIZE):  # a committee of bootstrap resamples: its spread is the model's uncertainty
            boot = np.sort(rng.choice(len(measured), len(measured), replace=True))  # a multiset: row order (a store view's) does not change it
            member = ModelSpec(scout.ensemble_family, {**params, "seed": seed * 101 + r * 11 + m}).create(pool)
            member.fit(measured.take(boot))
            preds.append(member.predict(pool))
        spread = np.std(preds, axis=0)
        for t, rows in by_task.items():
            have = set(kept[t])
            want = budget[t] if r == UNCERTAINTY_ROUNDS - 1 else min(budget[t], len(have) + math.ceil((budget[t] - len(have)) / (UNCERTAINTY_ROUNDS - r)))
            rest = [i for i in rows if i not in have]
            rest.sort(key=lambda i: -spread[i])
            kept[t] += rest[: max(0, want - len(have))]
    return np.concatenate([np.asarray(v, dtype=np.int64) for v in kept.values()])


KEEPERS = {"random": keep_random, "random_tasks": keep_random_tasks, "attention_loss": keep_attention_loss, "kcenter": keep_kcenter,
           "uncertainty": keep_uncertainty}


def prune(strategy: str, pool: FeatureTable, fraction: float, seed: int = 0, scout: Scout | None = None) -> list[str]:
    """The record ids `strategy` keeps of `pool` at `fraction` (0 < fraction <= 1)."""
    _check(fraction, strategy)
    if not len(pool):
        raise UserError(f"nothing to prune: the pool of {pool.slot or 'this table'} is empty (does the split leave a training side?)")
    if fraction >= 1.0:
        return pool.frame["record_id"].tolist()
    rows = np.sort(np.unique(KEEPERS[strategy](pool, fraction, seed, scout)))
    return pool.frame["record_id"].iloc[rows].tolist()


def variant_name(strategy: str, percent: int) -> str:
    """`kcenter-20`: the DVC matrix item's name, the directory and the registry tag alike."""
    return f"{strategy}-{percent}"


# -- the study's verdicts (benchmarks/pruning_study.py) -------------------------------------------

FULL = "full"  # the study's rows trained on the whole pool carry this strategy


def summarize(rows: list[dict], tolerance: float = 0.01) -> list[dict]:
    """Per (strategy, model, split, test_slot): mean PCA and top-5 over seeds at each kept fraction,
    the seeds' spread (max - min PCA), and the smallest kept fraction whose mean PCA is within
    `tolerance` of the full pool's (`within_1pt_min_fraction`; None when none is). A strategy
    `beats_random` at a fraction when its mean PCA exceeds random's by more than random's spread."""
    full: dict[tuple, list[float]] = defaultdict(list)
    cells: dict[tuple, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        key = (r["model"], r["split"], r.get("test_slot", ""))
        if r["strategy"] == FULL:
            full[key].append(r["pca"])
        else:
            cells[(r["strategy"], *key)][float(r["kept_fraction"])].append(r)
    stats: dict[tuple, dict[float, dict]] = {}
    for ckey, by_f in cells.items():
        stats[ckey] = {f: {"pca": float(np.mean([r["pca"] for r in rs])), "top5": float(np.mean([r["top5"] for r in rs])),
                           "spread": float(np.ptp([r["pca"] for r in rs])), "seeds": len(rs),
                           "train_seconds": float(np.mean([r["train_seconds"] for r in rs]))} for f, rs in by_f.items()}
    out = []
    for (strategy, model, split, test_slot), by_f in sorted(stats.items()):
        ref = full.get((model, split, test_slot))
        ref_pca = float(np.mean(ref)) if ref else None
        within = [f for f, s in by_f.items() if ref_pca is not None and s["pca"] >= ref_pca - tolerance]
        rnd = stats.get(("random", model, split, test_slot), {})
        beats = {f"{f:g}": bool(f in rnd and s["pca"] - rnd[f]["pca"] > rnd[f]["spread"]) for f, s in sorted(by_f.items())} if strategy != "random" else {}
        out.append({"strategy": strategy, "model": model, "split": split, "test_slot": test_slot, "full_pca": ref_pca,
                    "full_pca_spread": float(np.ptp(ref)) if ref else None,
                    "within_1pt_min_fraction": min(within) if within else None,
                    "by_fraction": {f"{f:g}": s for f, s in sorted(by_f.items(), reverse=True)}, "beats_random": beats})
    return out


# -- pruned variants as datasets (the prune stage) -------------------------------------------------

def write_variant_records(source, keep_ids: set[str], out, batch_rows: int = 65_536) -> int:
    """The kept rows of the records file `source` written to `out`, a batch at a time (a
    platform's records, traces and all, are never one table), in their original order; error
    records dropped as `variant_records` does. Returns the rows written."""
    keep = pa.array(sorted(keep_ids), pa.string())
    rows = 0
    with atomic_output(out) as tmp, pq.ParquetWriter(tmp, RECORDS_SCHEMA, compression="zstd") as writer:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_rows, columns=list(COLUMNS)):
            part = pa.Table.from_batches([batch]).cast(RECORDS_SCHEMA)
            part = part.filter(pc.and_(pc.is_in(part.column("record_id"), value_set=keep), pc.equal(part.column("error_no"), 0)))
            if part.num_rows:
                writer.write_table(part)
                rows += part.num_rows
    return rows


def variant_records(records, keep_ids: set[str]):
    """The rows of a records table (pyarrow) whose record_id is kept, in their original order.
    Error records carry no latency (featurize drops them), so no variant holds them."""
    mask = pc.and_(pc.is_in(records.column("record_id"), value_set=pa.array(sorted(keep_ids), pa.string())), pc.equal(records.column("error_no"), 0))
    return records.filter(mask)
