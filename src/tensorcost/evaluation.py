"""The split-strategy study: every model family under every split, per target, side by side.

For each target and split strategy the same training rows feed every model; the same test rows
score them. Reports PCA, top-1, top-5 (task-weighted), train time and prediction throughput,
and the same per held-out network. Pure orchestration over `splits`, `metrics` and `models`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .metrics import ranking_report
from .splits import assign_test, network_family

MODEL_KEYS = ("lightgbm_rank", "lightgbm_reg", "tvm_xgb", "attention", "attention_concat", "random")


@dataclass
class TargetData:
    """One target's feature frame (flat vectors, labels, latencies) and optional MetaSchedule features."""

    target: str
    frame: pd.DataFrame
    ms_features: list | None = None  # per-record PerStoreFeature matrices, aligned with frame rows


def split_mask(strategy: str, data: TargetData, params: dict) -> np.ndarray:
    df = data.frame
    return assign_test(
        strategy, df["task_id"].tolist(), df["program_id"].tolist(), float(params.get("test_fraction", 0.2)), int(params.get("seed", 0)),
        networks=df["networks"].tolist(), test_networks=tuple(params.get("test_networks", ())) or ("resnet50", "mobilenet_v2", "resnext50_32x4d", "bert_base"),
        targets=df["target"].tolist(), test_target=data.target,
    )


def _weights(df: pd.DataFrame, network: str | None = None) -> dict:
    if network is None:
        return dict(zip(df["task_id"], df["task_weight"].astype(float)))
    out = {}
    for tid, nets in zip(df["task_id"], df["networks"]):
        if tid not in out:
            out[tid] = float(sum(w for n, w in json.loads(nets).items() if network_family(n) == network))
    return out


THROUGHPUT_BATCH = 4096


def _throughput(predict: Callable[[object], np.ndarray], batch, n: int) -> float:
    """Candidates scored per second on a batch of at least THROUGHPUT_BATCH rows (best of 3),
    so small test sets do not turn the figure into a measurement of call overhead."""
    reps = max(1, -(-THROUGHPUT_BATCH // max(n, 1)))
    if isinstance(batch, np.ndarray):
        big = np.concatenate([batch] * reps)
    elif hasattr(batch, "take"):  # the attention model's ProgramBatch
        big = batch.take(np.tile(np.arange(n), reps))
    else:
        big = list(batch) * reps
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        predict(big)
        best = min(best, time.perf_counter() - t0)
    return n * reps / max(best, 1e-9)


def attention_batch(frame: pd.DataFrame, max_len: int):
    from .models.attention import make_batch

    return make_batch(frame["tokens"].to_numpy(), frame["n_tokens"].to_numpy(), np.stack(frame["flat"].to_numpy()), max_len)


def fit_predict(model_key: str, train: TargetData, test: TargetData, feature_schema: str, feature_names: list[str], lgb_params: dict, seed: int, attention_params: dict | None = None) -> tuple[np.ndarray, float, float]:
    """Train `model_key` on `train`, score `test`; returns (scores, train seconds, candidates/s)."""
    tr, te = train.frame, test.frame
    groups = (tr["target"] + "|" + tr["task_id"]).to_numpy()  # pooled targets rank within (target, task)
    if model_key == "random":
        rng = np.random.default_rng(seed)
        scores = rng.random(len(te))
        return scores, 0.0, _throughput(lambda b: rng.random(len(b)), np.zeros((len(te), 1)), len(te))
    if model_key.startswith("lightgbm"):
        from .models.lightgbm_model import LightGBMCostModel

        p = dict(lgb_params)
        p.pop("objective", None)
        model = LightGBMCostModel.create(train.target, feature_schema, feature_names, objective="lambdarank" if model_key == "lightgbm_rank" else "regression", **p)
        x_tr, x_te = np.stack(tr["flat"].to_numpy()), np.stack(te["flat"].to_numpy())
        t0 = time.perf_counter()
        model.fit(x_tr, tr["label"].to_numpy(), groups)
        train_s = time.perf_counter() - t0
        return model.predict(x_te), train_s, _throughput(model.predict, x_te, len(te))
    if model_key in ("attention", "attention_concat"):
        from .models.attention import AttentionCostModel

        params = dict(attention_params or {})
        if model_key == "attention_concat":
            params["fusion"] = "concat"  # the ablation: no FiLM modulation of the tokens
        model = AttentionCostModel.create(train.target, feature_schema, **params)
        b_tr, b_te = attention_batch(tr, model.cfg.max_len), attention_batch(te, model.cfg.max_len)
        t0 = time.perf_counter()
        model.fit(b_tr, tr["label"].to_numpy(), groups)
        train_s = time.perf_counter() - t0
        return model.predict(b_te), train_s, _throughput(model.predict, b_te, len(te))
    if model_key == "tvm_xgb":
        from .models.tvm_xgb import TVMXGBCostModel

        if train.ms_features is None or test.ms_features is None:
            raise ValueError("tvm_xgb needs MetaSchedule features (the msfeatures stage)")
        model = TVMXGBCostModel.create(train.target, feature_schema)
        t0 = time.perf_counter()
        model.fit(train.ms_features, tr["label"].to_numpy(), groups)
        train_s = time.perf_counter() - t0
        return model.predict(test.ms_features), train_s, _throughput(model.predict, test.ms_features, len(te))
    raise ValueError(f"unknown model {model_key!r}; known: {', '.join(MODEL_KEYS)}")


def take_rows(data: TargetData, idx: np.ndarray) -> TargetData:
    """The rows `idx` of a target's data (features and MetaSchedule features alike)."""
    ms = [data.ms_features[i] for i in idx] if data.ms_features is not None else None
    return TargetData(data.target, data.frame.iloc[idx].reset_index(drop=True), ms)


def _concat(parts: Sequence[TargetData], target: str) -> TargetData:
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    ms = None if any(p.ms_features is None for p in parts) else [m for p in parts for m in p.ms_features]
    return TargetData(target, frame, ms)


def run_study(
    datasets: dict[str, TargetData],
    strategies: Sequence[str],
    models: Sequence[str],
    split_params: dict,
    lgb_params: dict,
    feature_schema: str,
    feature_names: list[str],
    progress: Callable[[str], None] | None = None,
    attention_params: dict | None = None,
) -> tuple[dict, dict, dict]:
    """Returns (metrics, per_network, predictions) where
    metrics = {target: {split: {model: {pca, top1, top5, n_tasks, n_records, train_s, candidates_per_s}}}},
    per_network = {target: {split: {network: {model: {pca, top1, top5, n_tasks}}}}},
    predictions = {target: {split: (test frame, {model: scores})}} for plots."""
    metrics: dict = {}
    per_network: dict = {}
    predictions: dict = {}
    seed = int(split_params.get("seed", 0))
    for target, data in datasets.items():
        for strategy in strategies:
            if strategy == "by_hardware":
                others = [d for t, d in datasets.items() if t != target]
                if not others:
                    continue
                train, test = _concat(others, target), data
            else:
                mask = split_mask(strategy, data, split_params)
                if mask.all() or not mask.any():
                    continue  # e.g. by_network when no held-out network is in this data
                train, test = take_rows(data, np.flatnonzero(~mask)), take_rows(data, np.flatnonzero(mask))
            te = test.frame
            scores_by_model = {}
            for model_key in models:
                if progress:
                    progress(f"{target} / {strategy} / {model_key}")
                scores, train_s, per_s = fit_predict(model_key, train, test, feature_schema, feature_names, lgb_params, seed, attention_params)
                scores_by_model[model_key] = scores
                rep = ranking_report(te["task_id"].tolist(), scores, te["latency_s"].to_numpy(), _weights(te)).to_dict()
                metrics.setdefault(target, {}).setdefault(strategy, {})[model_key] = rep | {"train_s": train_s, "candidates_per_s": per_s}
                for net in sorted({network_family(n) for nets in te["networks"].unique() for n in json.loads(nets)}):
                    w = _weights(te, net)
                    rows = np.array([w.get(t, 0.0) > 0 for t in te["task_id"]])
                    if not rows.any():
                        continue
                    sub = te[rows]
                    r = ranking_report(sub["task_id"].tolist(), scores[rows], sub["latency_s"].to_numpy(), w)
                    per_network.setdefault(target, {}).setdefault(strategy, {}).setdefault(net, {})[model_key] = {"pca": r.pca, "top1": r.top1, "top5": r.top5, "n_tasks": r.n_tasks}
            predictions.setdefault(target, {})[strategy] = (te, scores_by_model)
    return metrics, per_network, predictions
