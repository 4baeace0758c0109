"""Cross-feature attention cost model (PyTorch), in the line of TLP.

A program's schedule-primitive tokens go through a self-attention encoder. The workload
(operator) features and the hardware features are their own inputs: a context vector built
from them modulates every token before attention (FiLM: `x * (1 + gamma) + beta`), so the same
primitive can be scored differently on different hardware or operators, and is also joined to
the pooled program vector before the scoring head. `fusion="concat"` drops the modulation and
only concatenates (the ablation). Trained with a pairwise ranking loss (RankNet by default,
LambdaRank or both: `ranking_loss`) within (target, task) groups.

Artifacts: `weights.pt` (a state dict, loaded with `torch.load(weights_only=True)`: PyTorch's
restricted unpickler, tensors and plain containers only) and `metadata.json` (architecture,
normalisation statistics, feature schema): nothing executable. Loading checks the metadata's
sizes, and that the weights file is as large as the architecture they describe, before
allocating anything.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from pydantic import Field, StrictBool, model_validator

from ..features import FLAT_PROGRAM_DIM, TOKEN_DIM, WORKLOAD_FEATURE_NAMES, FeatureTable
from ..hardware import HARDWARE_FEATURE_NAMES
from .base import CostModel, FamilyConfig, ModelFormatError, ModelMetadata, artifact_file, make_config
from .lightgbm_model import group_deviation
from .streaming import GroupChunkStream, running_stats, shard

WEIGHTS_FILE = "weights.pt"
MAX_WEIGHTS_BYTES = 4 << 30  # above the largest architecture AttentionConfig's bounds allow
CLIP = 5.0  # standardised inputs are clipped to this many training standard deviations
N_WORKLOAD = len(WORKLOAD_FEATURE_NAMES)


class AttentionConfig(FamilyConfig):
    """The architecture and its training. Upper bounds keep an edited artifact from asking for
    gigabytes before its weights are read."""

    d_model: int = Field(32, ge=4, le=1024)
    n_heads: int = Field(4, ge=1, le=64)
    n_layers: int = Field(1, ge=1, le=24)
    max_len: int = Field(72, ge=1, le=4096)  # the longest bundled trace has 68 primitives
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    fusion: Literal["film", "concat"] = "film"  # concat: the ablation without FiLM modulation
    program_features: StrictBool = True  # also feed the program-level summary (counts, decisions) to the head
    # the summary as each program's deviation from its task's mean (issue 13: what carries over to
    # operators whose absolute values no training task had); the tokens stay absolute
    group_relative: StrictBool = False
    loss: Literal["ranknet", "lambdarank", "hybrid"] = "ranknet"  # see ranking_loss
    epochs: int = Field(30, ge=1, le=10_000)
    lr: float = Field(2e-3, gt=0.0, le=1.0)
    warmup_frac: float = Field(0.05, ge=0.0, lt=1.0)  # linear warm-up, then cosine decay to 0 over all steps of a fit
    weight_decay: float = Field(1e-4, ge=0.0)
    groups_per_batch: int = Field(8, ge=1)
    programs_per_group: int = Field(48, ge=2)
    stream_buffer_chunks: int = Field(512, ge=1)  # training from a store view: the shuffle buffer, in chunks
    seed: int = Field(0, ge=0)
    threads: int = Field(2, ge=1)
    # fine-tuning (`fit(..., warm_start=True)`, the transfer study): at least `finetune_epochs`
    # epochs and `finetune_steps` optimizer steps (at 1% of a target an epoch is a step or two),
    # at `finetune_lr` (smaller than from scratch: keep what the source learned)
    finetune_epochs: int = Field(2, ge=1, le=10_000)
    finetune_steps: int = Field(40, ge=0, le=1_000_000)
    finetune_lr: float = Field(5e-4, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be a multiple of n_heads {self.n_heads}")
        return self


@dataclass
class ProgramBatch:
    """Model inputs: padded tokens, their mask, workload and hardware features, and the
    program-level summary of the flat vector (primitive counts, decisions)."""

    tokens: np.ndarray  # (n, max_len, TOKEN_DIM) float32
    lengths: np.ndarray  # (n,)
    workload: np.ndarray  # (n, N_WORKLOAD)
    hardware: np.ndarray  # (n, hardware features): whatever the feature table carries
    program: np.ndarray | None = None  # (n, FLAT_PROGRAM_DIM); zeros when absent

    def __post_init__(self) -> None:
        if self.program is None:
            self.program = np.zeros((len(self.lengths), FLAT_PROGRAM_DIM), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, idx) -> "ProgramBatch":
        return ProgramBatch(self.tokens[idx], self.lengths[idx], self.workload[idx], self.hardware[idx], self.program[idx])


def concat_batches(batches: Sequence[ProgramBatch]) -> ProgramBatch:
    """Batches of one max_len, one after another."""
    return ProgramBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in ("tokens", "lengths", "workload", "hardware", "program")))


def batch_from_table(table: FeatureTable, max_len: int) -> ProgramBatch:
    """The model's inputs for a feature table's rows (its compact tokens expanded at once)."""
    flat = table.flat if len(table) else np.zeros((0, FLAT_PROGRAM_DIM + N_WORKLOAD + len(HARDWARE_FEATURE_NAMES)), np.float32)
    head = FLAT_PROGRAM_DIM + N_WORKLOAD
    if flat.ndim != 2 or flat.shape[1] <= head:
        raise ValueError(f"flat feature vectors have {flat.shape[1] if flat.ndim == 2 else flat.shape} values, expected {head} program and workload features and then hardware features")
    tokens, lengths = table.dense_tokens(max_len)
    return ProgramBatch(tokens, lengths.astype(np.int64), flat[:, FLAT_PROGRAM_DIM:head], flat[:, head:], flat[:, :FLAT_PROGRAM_DIM])


def _module(cfg: AttentionConfig, n_hardware: int):
    import torch
    from torch import nn

    class CrossFeatureRanker(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.d_model
            self.embed = nn.Linear(TOKEN_DIM, d)
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, d))
            nn.init.normal_(self.pos, std=0.02)
            self.context = nn.Sequential(nn.Linear(N_WORKLOAD + n_hardware, d), nn.GELU(), nn.Linear(d, d))
            self.film = nn.Linear(d, 2 * d) if cfg.fusion == "film" else None
            layer = nn.TransformerEncoderLayer(d, cfg.n_heads, 2 * d, cfg.dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
            self.program = nn.Sequential(nn.Linear(FLAT_PROGRAM_DIM, d), nn.GELU(), nn.Linear(d, d)) if cfg.program_features else None
            self.head = nn.Sequential(nn.Linear((3 if cfg.program_features else 2) * d, d), nn.GELU(), nn.Linear(d, 1))

        def forward(self, tokens, lengths, context_feats, program_feats=None):
            return self.head(self.represent(tokens, lengths, context_feats, program_feats)).squeeze(-1)

        def represent(self, tokens, lengths, context_feats, program_feats=None):
            """The head's input: pooled primitive tokens, context and program summary."""
            n, length, _ = tokens.shape
            pad = torch.arange(length, device=tokens.device)[None, :] >= lengths[:, None]  # True = padding
            x = self.embed(tokens) + self.pos[:length]
            ctx = self.context(context_feats)
            if self.film is not None:
                gamma, beta = self.film(ctx).chunk(2, dim=-1)
                x = x * (1 + gamma[:, None, :]) + beta[:, None, :]
            h = self.encoder(x, src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).float()
            pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
            parts = [pooled, ctx] + ([self.program(program_feats)] if self.program is not None else [])
            return torch.cat(parts, dim=-1)

    return CrossFeatureRanker()


def ranking_loss(scores, labels, valid, kind: str = "lambdarank"):
    """Pairwise ranking loss over padded groups: scores, labels, valid are (G, P) tensors.

    For every pair (i, j) of a group with label_i > label_j, the logistic pair loss
    log(1 + exp(-(s_i - s_j))), averaged with a weight per pair:
    - "ranknet": every pair alike, which is what pairwise comparison accuracy (PCA) counts;
    - "lambdarank": |delta NDCG| of swapping the pair (gains = labels), which puts the weight on
      the pairs that decide the top of the ranking (top-k) and almost none on pairs of slow programs;
    - "hybrid": the sum of both, each normalised to mean weight 1 over the batch's pairs.
    Normalising by the total weight keeps the gradient scale independent of the weighting.
    """
    import torch

    if kind not in ("lambdarank", "ranknet", "hybrid"):
        raise ValueError(f"unknown ranking loss {kind!r}; known: lambdarank, ranknet, hybrid")
    pair = (labels[:, :, None] > labels[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    pairf = pair.float()
    ds = scores[:, :, None] - scores[:, None, :]
    loss = torch.nn.functional.softplus(-ds)
    if kind == "ranknet":
        weight = pairf
    else:
        neg = torch.finfo(scores.dtype).min
        s = scores.detach().masked_fill(~valid, neg)
        order = torch.argsort(s, dim=1, descending=True)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order))
        disc = 1.0 / torch.log2(ranks.float() + 2.0)
        gains = labels * valid
        ideal = torch.sort(gains, dim=1, descending=True).values
        idcg = (ideal / torch.log2(torch.arange(s.shape[1], device=s.device).float() + 2.0)).sum(1).clamp(min=1e-9)
        delta = (gains[:, :, None] - gains[:, None, :]).abs() * (disc[:, :, None] - disc[:, None, :]).abs() / idcg[:, None, None]
        weight = delta * pairf
        if kind == "hybrid":
            n = pairf.sum().clamp(min=1.0)
            weight = pairf + weight * (n / weight.sum().clamp(min=1e-12))
    return (loss * weight).sum() / weight.sum().clamp(min=1e-12)


def lambdarank_loss(scores, labels, valid):
    """LambdaRank: `ranking_loss(..., "lambdarank")`."""
    return ranking_loss(scores, labels, valid, "lambdarank")


class AttentionCostModel(CostModel):
    family = "attention"
    inputs = ("tokens", "flat")
    embeds = True
    can_warm_start = True
    Config = AttentionConfig

    def __init__(self, metadata: ModelMetadata, cfg: AttentionConfig, module=None, norm: dict | None = None):
        super().__init__(metadata)
        self.n_hardware: int | None = None  # set by the first fit (the feature table's hardware features)
        self.cfg = cfg
        self.module = module
        self.norm = norm or {}

    @classmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str] | None = None, **params) -> "AttentionCostModel":
        cfg = make_config(AttentionConfig, params, "attention params")
        meta = ModelMetadata(family="attention", feature_schema=feature_schema, target=target, objective=cfg.loss, feature_names=list(feature_names or []),
                             params=cfg.model_dump())
        return cls(meta, cfg)

    # -- normalisation of the context features (standardised with training statistics)
    def _standardised(self, x: np.ndarray, prefix: str = "") -> np.ndarray:
        """Standardised with the training statistics, clipped to +-CLIP: a feature constant in
        training (every training platform has the same L3) must not reach the network as a
        huge number on a new platform."""
        mean, std = np.asarray(self.norm[f"{prefix}mean"], np.float32), np.asarray(self.norm[f"{prefix}std"], np.float32)
        return np.clip((x - mean) / std, -CLIP, CLIP).astype(np.float32)

    def _context(self, batch: ProgramBatch) -> np.ndarray:
        return self._standardised(np.concatenate([batch.workload, batch.hardware], axis=1))

    def _program(self, batch: ProgramBatch) -> np.ndarray:
        """The standardised program summary; zeros for a model trained without it."""
        if "program_mean" not in self.norm:
            return np.zeros_like(batch.program)
        return self._standardised(batch.program, "program_")

    @staticmethod
    def _stats(x: np.ndarray) -> tuple[list, list]:
        std = x.std(0)
        return x.mean(0).tolist(), np.where(std > 1e-6, std, 1.0).tolist()

    def _seed(self) -> None:
        import torch

        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        random.seed(self.cfg.seed)
        torch.set_num_threads(self.cfg.threads)
        torch.use_deterministic_algorithms(True)

    def steps_per_epoch(self, groups: Sequence[str], per_step: int | None = None) -> int:
        """Optimizer steps in one epoch over these groups: each group is cut into chunks of
        `programs_per_group` (a chunk of one program has no pair and is dropped), and
        `groups_per_batch` chunks make a step."""
        chunk = self.cfg.programs_per_group
        _, sizes = np.unique(np.asarray(groups), return_counts=True)
        n_chunks = sum(int(n) // chunk + (int(n) % chunk > 1) for n in sizes)
        return -(-n_chunks // (per_step or self.cfg.groups_per_batch))

    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, warm_start: bool = False, seed: int | None = None, log=None) -> dict[str, list[float]]:
        """Train from scratch, or with `warm_start` fine-tune the trained weights (at least
        `finetune_epochs` epochs and `finetune_steps` steps at `finetune_lr`). Returns the mean
        loss of each epoch."""
        if seed is not None:
            self.cfg.seed = seed
        groups = train.groups
        if warm_start and self.module is not None:
            steps = max(1, self.steps_per_epoch(groups))
            epochs, lr = max(self.cfg.finetune_epochs, -(-self.cfg.finetune_steps // steps)), self.cfg.finetune_lr
        else:
            self.module = None
            epochs, lr = self.cfg.epochs, self.cfg.lr
        if not isinstance(train, FeatureTable):  # a store view: streamed a fragment at a time...
            if self._fits_the_buffer(train):  # ...unless the shuffle buffer would hold all of it anyway: then the in-memory loop, same result as a table
                train = train.materialize(self.inputs)
            else:
                return {f"train_{self.cfg.loss}_loss": self._train_stream(train, epochs, lr, log)}
        history = self._train(self._batch(train), train.labels, groups, epochs, lr, log)
        return {f"train_{self.cfg.loss}_loss": history}

    def _fits_the_buffer(self, view) -> bool:
        """Whether every task chunk of `view` fits the stream's shuffle buffer (one process)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return False
        _, sizes = np.unique(np.asarray(view.groups), return_counts=True)
        return int(np.sum(-(-sizes // self.cfg.programs_per_group))) <= self.cfg.stream_buffer_chunks

    def _train(self, batch: ProgramBatch, labels: np.ndarray, groups: Sequence[str], n_epochs: int, lr: float, log=None) -> list[float]:
        """The training loop (from scratch when no module exists yet): mean loss per epoch."""
        self._seed()
        if self.module is None:
            context_stats = self._stats(np.concatenate([batch.workload, batch.hardware], axis=1))
            self._new_module(context_stats, self._stats(batch.program) if self.cfg.program_features else None, batch.hardware.shape[1])
        module = self.module
        groups = np.asarray(groups)
        by_group = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        opt, sched = self._optimizer(lr, max(1, n_epochs * self.steps_per_epoch(groups)))
        rng = np.random.default_rng(self.cfg.seed)
        context = self._context(batch)
        program = self._program(batch)
        labels = np.asarray(labels, dtype=np.float32)
        history = []
        for epoch in range(n_epochs):
            module.train()
            chunks = []
            for idx in by_group:
                perm = rng.permutation(idx)
                chunks += [perm[i:i + self.cfg.programs_per_group] for i in range(0, len(perm), self.cfg.programs_per_group) if len(perm[i:i + self.cfg.programs_per_group]) > 1]
            order = rng.permutation(len(chunks))
            losses = []
            t0 = time.perf_counter()
            for b in range(0, len(order), self.cfg.groups_per_batch):
                sel = [chunks[i] for i in order[b:b + self.cfg.groups_per_batch]]
                flat_idx = np.concatenate(sel)
                losses.append(self._step(opt, sched, batch.take(flat_idx), context[flat_idx], program[flat_idx], labels[flat_idx], [len(c) for c in sel]))
            history.append(float(np.mean(losses)) if losses else math.nan)
            if log:
                log(f"epoch {epoch + 1}: {self.cfg.loss} loss {history[-1]:.4f} ({time.perf_counter() - t0:.1f} s)")
        module.eval()
        return history

    def _train_stream(self, view, n_epochs: int, lr: float, log=None) -> list[float]:
        """The training loop over a store view: task chunks streamed through a shuffle buffer
        (models.streaming), model inputs prepared a fragment at a time (group-relative features
        see whole tasks); memory is the buffer, never the dataset. Mean loss per epoch."""
        _P = FLAT_PROGRAM_DIM  # the program summary's width: the flat vector's head

        self._seed()
        if self.module is None:
            context_stats = running_stats(view, slice(_P, None))
            program_stats = running_stats(view, slice(0, _P)) if self.cfg.program_features else None
            self._new_module(context_stats, program_stats, len(view.feature_names or []) - _P - N_WORKLOAD)
        rank, world, module = 0, 1, self.module
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # under torchrun: DDP, each rank its share of the fragments
            from torch.nn.parallel import DistributedDataParallel

            rank, world = dist.get_rank(), dist.get_world_size()
            module = DistributedDataParallel(self.module)
        # the global batch stays groups_per_batch chunks (each rank its share), so one or several
        # processes take about as many steps with the same schedule; every rank takes the same
        # number of steps (DDP's all-reduce): the fewest any rank has
        per_step = max(1, self.cfg.groups_per_batch // world)
        per_rank = [self._stream_steps(view, per_step, rank=r, world=world) for r in range(world)]
        steps = min(per_rank)
        opt, sched = self._optimizer(lr, max(1, n_epochs * steps))

        def prepare(table):
            batch = self._batch(table)
            return batch, self._context(batch), self._program(batch), np.asarray(table.labels, dtype=np.float32)

        stream = GroupChunkStream(view, self.cfg.programs_per_group, per_step, self.cfg.stream_buffer_chunks, self.cfg.seed,
                                  rank=rank, world=world, prepare=prepare)
        history = []
        for epoch in range(n_epochs):
            self.module.train()
            stream.set_epoch(epoch)
            losses = []
            t0 = time.perf_counter()
            for picked in stream:
                if len(losses) == steps:
                    break
                parts = [(prep[0].take(rows), prep[1][rows], prep[2][rows], prep[3][rows]) for prep, rows in picked]
                sub = concat_batches([p[0] for p in parts])
                losses.append(self._step(opt, sched, sub, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                                         np.concatenate([p[3] for p in parts]), [len(rows) for _, rows in picked], module))
            if world > 1:  # the epoch's loss over every rank's steps
                import torch

                mean = torch.tensor([float(np.mean(losses)) if losses else 0.0])
                dist.all_reduce(mean)
                losses = [float(mean) / world]
            history.append(float(np.mean(losses)) if losses else math.nan)
            if log:
                log(f"epoch {epoch + 1}: {self.cfg.loss} loss {history[-1]:.4f} ({time.perf_counter() - t0:.1f} s, streamed)")
        self.module.eval()
        return history

    def _new_module(self, context_stats: tuple, program_stats: tuple | None, n_hardware: int) -> None:
        self.norm = {"mean": context_stats[0], "std": context_stats[1]}
        if program_stats is not None:
            self.norm["program_mean"], self.norm["program_std"] = program_stats
        self.n_hardware = n_hardware
        self.module = _module(self.cfg, self.n_hardware)

    def _optimizer(self, lr: float, total_steps: int):
        import torch

        opt = torch.optim.AdamW(self.module.parameters(), lr=lr, weight_decay=self.cfg.weight_decay)
        warmup = max(1, int(self.cfg.warmup_frac * total_steps))
        # warm-up then cosine decay: short fits (fine-tuning on 1% of a target) still end at a low lr
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
        return opt, sched

    def _stream_steps(self, view, per_step: int, rank: int = 0, world: int = 1) -> int:
        """Steps one epoch of the stream gives `rank`: its groups' chunks, `per_step` a step."""
        mine = shard(view, rank, world)  # GroupChunkStream's share of `rank`
        return self.steps_per_epoch(mine.groups, per_step) if len(mine) else 0

    def _step(self, opt, sched, sub: ProgramBatch, context: np.ndarray, program: np.ndarray, labels: np.ndarray, sizes: list[int], module=None) -> float:
        """One optimizer step on chunks of `sizes` programs (each chunk one task), rows in chunk order;
        `module`: the module to run (a DDP wrapper of ours), default ours."""
        import torch

        module = module if module is not None else self.module

        p = max(sizes)
        valid = np.zeros((len(sizes), p), dtype=bool)
        pos = np.zeros((len(sizes), p), dtype=np.int64)
        for gi, k in enumerate(sizes):
            valid[gi, :k] = True
            pos[gi, :k] = np.arange(k) + sum(sizes[:gi])
        scores_flat = module(torch.from_numpy(sub.tokens), torch.from_numpy(sub.lengths), torch.from_numpy(context), torch.from_numpy(program))
        scores = scores_flat[torch.from_numpy(pos)]
        lab = torch.from_numpy(labels)[torch.from_numpy(pos)]
        loss = ranking_loss(scores, lab, torch.from_numpy(valid), self.cfg.loss)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)
        opt.step()
        sched.step()
        return float(loss.detach())

    def _batch(self, table: FeatureTable) -> ProgramBatch:
        batch = batch_from_table(table, self.cfg.max_len)
        if self.cfg.group_relative and len(batch):
            batch.program = group_deviation(batch.program, table.groups)
        return batch

    def predict(self, table: FeatureTable) -> np.ndarray:
        parts = [self.predict_batch(self._batch(part)) for part in table.iter_tables()]  # a store view: a fragment at a time
        return np.concatenate(parts) if parts else np.zeros(0)

    def embed(self, table: FeatureTable, chunk: int = 1024) -> np.ndarray:
        """(n, 2-3 x d_model) program embeddings: what the scoring head sees (the diversity
        coreset of `pruning` measures distances here)."""
        parts = [self.predict_batch(self._batch(part), chunk, embed=True) for part in table.iter_tables()]  # a store view: a fragment at a time
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def predict_batch(self, batch: ProgramBatch, chunk: int = 1024, embed: bool = False) -> np.ndarray:
        import torch

        self._check_trained(self.module is not None)
        if batch.hardware.shape[1] != self.n_hardware:
            raise ValueError(f"the model was trained on {self.n_hardware} hardware features, these programs have {batch.hardware.shape[1]}")
        self.module.eval()
        context = self._context(batch)
        program = self._program(batch)
        out = []
        with torch.no_grad():
            for s in range(0, len(batch), chunk):
                sub = batch.take(slice(s, s + chunk))
                args = (torch.from_numpy(sub.tokens), torch.from_numpy(sub.lengths), torch.from_numpy(context[s:s + chunk]), torch.from_numpy(program[s:s + chunk]))
                out.append((self.module.represent(*args) if embed else self.module(*args)).numpy())
        if not out:
            return np.zeros((0, 0) if embed else 0)
        return np.concatenate(out).astype(np.float64)

    def _save_weights(self, directory: Path) -> None:
        import torch

        torch.save(self.module.state_dict(), directory / WEIGHTS_FILE)
        self.metadata.params = self.cfg.model_dump()
        self.metadata.extra = {"norm": self.norm, "token_dim": TOKEN_DIM, "n_workload": N_WORKLOAD, "n_hardware": self.n_hardware, "n_program": FLAT_PROGRAM_DIM}

    @classmethod
    def _load(cls, metadata: ModelMetadata, directory: Path) -> "AttentionCostModel":
        import torch

        extra = metadata.extra
        sizes = (extra.get("token_dim"), extra.get("n_workload"), extra.get("n_program", FLAT_PROGRAM_DIM))
        if sizes != (TOKEN_DIM, N_WORKLOAD, FLAT_PROGRAM_DIM):
            raise ModelFormatError(f"{directory}: model input sizes (token/workload/program) {'/'.join(map(str, sizes))} do not match this code's {TOKEN_DIM}/{N_WORKLOAD}/{FLAT_PROGRAM_DIM}")
        n_hardware = extra.get("n_hardware")
        if not isinstance(n_hardware, int) or not 1 <= n_hardware <= 1024:
            raise ModelFormatError(f"{directory}: metadata n_hardware must be an integer in [1, 1024], got {n_hardware!r}")
        cfg = make_config(AttentionConfig, metadata.params, f"{directory}: attention params")
        norm = _checked_norm(extra.get("norm"), N_WORKLOAD + n_hardware, directory)
        path = artifact_file(directory, WEIGHTS_FILE, MAX_WEIGHTS_BYTES)
        # The tensors the metadata's architecture needs, built on the meta device (no memory):
        # the file must be about as large as they are, so an edited metadata.json cannot make
        # us allocate more than the file holds, nor a truncated file get as far as torch.load.
        with torch.device("meta"):
            expected = _module(cfg, n_hardware).state_dict()
        n_bytes = sum(t.numel() * t.element_size() for t in expected.values())
        size = path.stat().st_size
        if not n_bytes <= size <= n_bytes + 4096 + 1024 * len(expected):  # torch.save: ~350 bytes/tensor of zip and index
            raise ModelFormatError(f"{path}: {size} bytes, but the architecture in {directory / 'metadata.json'} has {n_bytes} bytes "
                                   f"of weights in {len(expected)} tensors; the files do not belong together")
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001  (a corrupt zip or a refused object: one line)
            raise ModelFormatError(f"{path}: unreadable weights ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})") from None
        wrong = [k for k in expected if not (isinstance(state, dict) and isinstance(state.get(k), torch.Tensor)
                                              and state[k].shape == expected[k].shape and state[k].dtype == expected[k].dtype)]
        if wrong or len(state) != len(expected):
            raise ModelFormatError(f"{path}: weights do not match the architecture in the metadata (first: {(wrong or ['extra tensors'])[0]})")
        module = _module(cfg, n_hardware)
        module.load_state_dict(state)
        module.eval()
        model = cls(metadata, cfg, module, norm)
        model.n_hardware = n_hardware
        return model


def _checked_norm(norm, n_context: int, directory: Path) -> dict:
    """The normalisation statistics of the metadata: finite numbers, one per context feature
    (and per program feature when present); std > 0 (it divides). Features are log-scaled, so a
    statistic beyond +-1e6 cannot come from training: it is damage."""
    expect = {"mean": n_context, "std": n_context} | ({"program_mean": FLAT_PROGRAM_DIM, "program_std": FLAT_PROGRAM_DIM}
                                                     if isinstance(norm, dict) and "program_mean" in norm else {})
    for key, n in expect.items():
        v = norm.get(key) if isinstance(norm, dict) else None
        ok = isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and math.isfinite(x) and abs(x) <= 1e6 for x in v)
        if not ok or (key.endswith("std") and min(v) <= 0):
            raise ModelFormatError(f"{directory}: metadata norm.{key} must be {n} finite numbers within +-1e6{' > 0' if key.endswith('std') else ''}")
    return norm


__all__ = ["AttentionConfig", "AttentionCostModel", "ProgramBatch", "batch_from_table", "lambdarank_loss", "ranking_loss"]
