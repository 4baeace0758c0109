"""Cross-feature attention cost model (PyTorch), in the line of TLP.

A program's schedule-primitive tokens go through a self-attention encoder. The workload
(operator) features and the hardware features are their own inputs: a context vector built
from them modulates every token before attention (FiLM: `x * (1 + gamma) + beta`), so the same
primitive can be scored differently on different hardware or operators, and is also joined to
the pooled program vector before the scoring head. `fusion="concat"` drops the modulation and
only concatenates (the ablation). Trained with a LambdaRank loss within (target, task) groups.

Artifacts: `weights.pt` (a state dict, loaded with `torch.load(weights_only=True)`) and
`metadata.json` (architecture, normalisation statistics, feature schema): nothing executable.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..features import FLAT_PROGRAM_DIM, TOKEN_DIM, WORKLOAD_FEATURE_NAMES
from ..hardware import HARDWARE_FEATURE_NAMES
from .base import ModelMetadata, read_metadata

WEIGHTS_FILE = "weights.pt"
N_WORKLOAD = len(WORKLOAD_FEATURE_NAMES)
N_HARDWARE = len(HARDWARE_FEATURE_NAMES)


@dataclass
class AttentionConfig:
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_len: int = 96
    dropout: float = 0.1
    fusion: str = "film"  # "film" | "concat"
    program_features: bool = False  # also feed the program-level summary (counts, decisions) to the head
    loss: str = "ranknet"  # "ranknet" | "lambdarank" | "hybrid" (see ranking_loss)
    epochs: int = 8
    lr: float = 2e-3
    warmup_frac: float = 0.05  # linear warm-up, then cosine decay to 0 over all steps of a fit
    weight_decay: float = 1e-4
    groups_per_batch: int = 8
    programs_per_group: int = 48
    seed: int = 0
    threads: int = 2


@dataclass
class ProgramBatch:
    """Model inputs: padded tokens, their mask, workload and hardware features, and the
    program-level summary of the flat vector (primitive counts, decisions)."""

    tokens: np.ndarray  # (n, max_len, TOKEN_DIM) float32
    lengths: np.ndarray  # (n,)
    workload: np.ndarray  # (n, N_WORKLOAD)
    hardware: np.ndarray  # (n, N_HARDWARE)
    program: np.ndarray | None = None  # (n, FLAT_PROGRAM_DIM); zeros when absent

    def __post_init__(self) -> None:
        if self.program is None:
            self.program = np.zeros((len(self.lengths), FLAT_PROGRAM_DIM), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, idx) -> "ProgramBatch":
        return ProgramBatch(self.tokens[idx], self.lengths[idx], self.workload[idx], self.hardware[idx], self.program[idx])


def make_batch(token_rows: Sequence[np.ndarray], n_tokens: Sequence[int], flat: np.ndarray, max_len: int) -> ProgramBatch:
    """From the feature frame's columns: flattened token rows, token counts, flat vectors (whose
    tail is the workload then the hardware features)."""
    n = len(n_tokens)
    tokens = np.zeros((n, max_len, TOKEN_DIM), dtype=np.float32)
    lengths = np.zeros(n, dtype=np.int64)
    for i, (row, k) in enumerate(zip(token_rows, n_tokens)):
        mat = np.asarray(row, dtype=np.float32).reshape(int(k), TOKEN_DIM)[:max_len]
        tokens[i, : len(mat)] = mat
        lengths[i] = max(1, len(mat))
    flat = np.asarray(flat, dtype=np.float32)
    if flat.shape[1] != FLAT_PROGRAM_DIM + N_WORKLOAD + N_HARDWARE:
        raise ValueError(f"flat feature vectors have {flat.shape[1]} values, expected {FLAT_PROGRAM_DIM + N_WORKLOAD + N_HARDWARE}")
    return ProgramBatch(tokens, lengths, flat[:, FLAT_PROGRAM_DIM:-N_HARDWARE], flat[:, -N_HARDWARE:], flat[:, :FLAT_PROGRAM_DIM])


def _module(cfg: AttentionConfig):
    import torch
    from torch import nn

    class CrossFeatureRanker(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.d_model
            self.embed = nn.Linear(TOKEN_DIM, d)
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, d))
            nn.init.normal_(self.pos, std=0.02)
            self.context = nn.Sequential(nn.Linear(N_WORKLOAD + N_HARDWARE, d), nn.GELU(), nn.Linear(d, d))
            self.film = nn.Linear(d, 2 * d) if cfg.fusion == "film" else None
            layer = nn.TransformerEncoderLayer(d, cfg.n_heads, 2 * d, cfg.dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
            self.program = nn.Sequential(nn.Linear(FLAT_PROGRAM_DIM, d), nn.GELU(), nn.Linear(d, d)) if cfg.program_features else None
            self.head = nn.Sequential(nn.Linear((3 if cfg.program_features else 2) * d, d), nn.GELU(), nn.Linear(d, 1))

        def forward(self, tokens, lengths, context_feats, program_feats=None):
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
            return self.head(torch.cat(parts, dim=-1)).squeeze(-1)

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


class AttentionCostModel:
    def __init__(self, metadata: ModelMetadata, cfg: AttentionConfig, module=None, norm: dict | None = None):
        self.metadata = metadata
        self.cfg = cfg
        self.module = module
        self.norm = norm or {}

    @classmethod
    def create(cls, target: str, feature_schema: str, **params) -> "AttentionCostModel":
        cfg = AttentionConfig(**params)
        meta = ModelMetadata(family="attention", feature_schema=feature_schema, target=target, objective=cfg.loss, params=cfg.__dict__.copy())
        return cls(meta, cfg)

    # -- normalisation of the context features (standardised with training statistics)
    def _standardised(self, x: np.ndarray, prefix: str = "") -> np.ndarray:
        mean, std = np.asarray(self.norm[f"{prefix}mean"], np.float32), np.asarray(self.norm[f"{prefix}std"], np.float32)
        return ((x - mean) / std).astype(np.float32)

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
        import random

        import torch

        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        random.seed(self.cfg.seed)
        torch.set_num_threads(self.cfg.threads)
        torch.use_deterministic_algorithms(True)

    def steps_per_epoch(self, groups: Sequence[str]) -> int:
        """Optimizer steps in one epoch over these groups: each group is cut into chunks of
        `programs_per_group` (a chunk of one program has no pair and is dropped), and
        `groups_per_batch` chunks make a step."""
        chunk = self.cfg.programs_per_group
        _, sizes = np.unique(np.asarray(groups), return_counts=True)
        n_chunks = sum(int(n) // chunk + (int(n) % chunk > 1) for n in sizes)
        return -(-n_chunks // self.cfg.groups_per_batch)

    def fit(self, batch: ProgramBatch, labels: np.ndarray, groups: Sequence[str], epochs: int | None = None, log=None) -> list[float]:
        """Train from scratch (or continue, when already trained: fine-tuning). Returns the mean
        loss of each epoch."""
        import torch

        self._seed()
        if self.module is None:
            mean, std = self._stats(np.concatenate([batch.workload, batch.hardware], axis=1))
            self.norm = {"mean": mean, "std": std}
            if self.cfg.program_features:
                self.norm["program_mean"], self.norm["program_std"] = self._stats(batch.program)
            self.module = _module(self.cfg)
        module = self.module
        opt = torch.optim.AdamW(module.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        groups = np.asarray(groups)
        by_group = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        n_epochs = epochs or self.cfg.epochs
        total_steps = max(1, n_epochs * self.steps_per_epoch(groups))
        warmup = max(1, int(self.cfg.warmup_frac * total_steps))
        # warm-up then cosine decay: short fits (fine-tuning on 1% of a target) still end at a low lr
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
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
                p = max(len(c) for c in sel)
                flat_idx = np.concatenate(sel)
                valid = np.zeros((len(sel), p), dtype=bool)
                pos = np.zeros((len(sel), p), dtype=np.int64)
                for gi, c in enumerate(sel):
                    valid[gi, : len(c)] = True
                    pos[gi, : len(c)] = np.arange(len(c)) + sum(len(x) for x in sel[:gi])
                sub = batch.take(flat_idx)
                scores_flat = module(torch.from_numpy(sub.tokens), torch.from_numpy(sub.lengths), torch.from_numpy(context[flat_idx]), torch.from_numpy(program[flat_idx]))
                scores = scores_flat[torch.from_numpy(pos)]
                lab = torch.from_numpy(labels[flat_idx])[torch.from_numpy(pos)]
                loss = ranking_loss(scores, lab, torch.from_numpy(valid), self.cfg.loss)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
            history.append(float(np.mean(losses)) if losses else math.nan)
            if log:
                log(f"epoch {epoch + 1}: {self.cfg.loss} loss {history[-1]:.4f} ({time.perf_counter() - t0:.1f} s)")
        module.eval()
        return history

    def predict(self, batch: ProgramBatch, chunk: int = 1024) -> np.ndarray:
        import torch

        if self.module is None:
            raise RuntimeError("model is not trained")
        self.module.eval()
        context = self._context(batch)
        program = self._program(batch)
        out = []
        with torch.no_grad():
            for s in range(0, len(batch), chunk):
                sub = batch.take(slice(s, s + chunk))
                out.append(self.module(torch.from_numpy(sub.tokens), torch.from_numpy(sub.lengths), torch.from_numpy(context[s:s + chunk]), torch.from_numpy(program[s:s + chunk])).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def save(self, directory: str | Path) -> None:
        import torch

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.module.state_dict(), directory / WEIGHTS_FILE)
        self.metadata.params = self.cfg.__dict__.copy()
        self.metadata.extra = {"norm": self.norm, "token_dim": TOKEN_DIM, "n_workload": N_WORKLOAD, "n_hardware": N_HARDWARE, "n_program": FLAT_PROGRAM_DIM}
        self.metadata.write(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "AttentionCostModel":
        import torch

        directory = Path(directory)
        meta = read_metadata(directory)
        extra = meta.extra
        sizes = (extra.get("token_dim"), extra.get("n_workload"), extra.get("n_hardware"), extra.get("n_program", FLAT_PROGRAM_DIM))
        if sizes != (TOKEN_DIM, N_WORKLOAD, N_HARDWARE, FLAT_PROGRAM_DIM):
            raise ValueError(f"{directory}: model input sizes (token/workload/hardware/program) {'/'.join(map(str, sizes))} do not match this code's {TOKEN_DIM}/{N_WORKLOAD}/{N_HARDWARE}/{FLAT_PROGRAM_DIM}")
        cfg = AttentionConfig(**meta.params)
        module = _module(cfg)
        module.load_state_dict(torch.load(directory / WEIGHTS_FILE, weights_only=True))
        module.eval()
        return cls(meta, cfg, module, extra["norm"])


__all__ = ["AttentionConfig", "AttentionCostModel", "ProgramBatch", "lambdarank_loss", "make_batch", "ranking_loss"]
