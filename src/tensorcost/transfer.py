"""Transfer to new target hardware: the learning-curve study (paper's central claim).

On the held-out target's records (every target's records are a `by_hardware` test set for a
model trained elsewhere), a fixed test side is held out by program hash; the rest is the pool
from which the first k% (by a second hash, so smaller k is a subset of larger k) is the target
data an approach may use. Approaches:

- `zero_shot` (k = 0): the source model as pulled from the registry;
- `finetune`: the source model trained further on k% of the target's data;
- `scratch`: the same architecture trained from scratch on the same k%;
- `lightgbm_rank`, `tvm_xgb`: the tree models trained on the same k%.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Callable, Sequence

import numpy as np

from .evaluation import TargetData, attention_batch, fit_predict, take_rows
from .metrics import ranking_report

APPROACHES = ("zero_shot", "finetune", "scratch", "lightgbm_rank", "tvm_xgb")


def _h(key: str, salt: str) -> float:
    return int.from_bytes(hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=8).digest(), "little") / 2**64


def target_split(data: TargetData, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(test mask, pool order): the test side by program hash; the pool ranked by a second hash."""
    keys = [f"{t}|{p}" for t, p in zip(data.frame["task_id"], data.frame["program_id"])]
    test = np.array([_h(k, f"test{seed}") < test_fraction for k in keys])
    pool = np.flatnonzero(~test)
    order = pool[np.argsort([_h(keys[i], f"pool{seed}") for i in pool], kind="stable")]
    return test, order


def transfer_study(
    source_model,
    data: TargetData,
    fractions: Sequence[float],
    approaches: Sequence[str],
    *,
    test_fraction: float,
    seed: int,
    finetune_epochs: int,
    attention_params: dict,
    finetune_steps: int = 0,
    finetune_lr: float | None = None,
    lgb_params: dict,
    feature_schema: str,
    feature_names: list[str],
    log: Callable[[str], None] | None = None,
    keep_finetuned_at: float | None = None,
) -> tuple[dict, object | None]:
    """Returns ({approach: {k: {"pca", "top5", "n_train"}}}, the fine-tuned model at `keep_finetuned_at`)."""
    test_mask, order = target_split(data, test_fraction, seed)
    test = take_rows(data, np.flatnonzero(test_mask))
    te = test.frame
    weights = dict(zip(te["task_id"], te["task_weight"].astype(float)))

    def report(scores, n_train):
        r = ranking_report(te["task_id"].tolist(), scores, te["latency_s"].to_numpy(), weights)
        return {"pca": r.pca, "top5": r.top5, "top1": r.top1, "n_train": int(n_train)}

    out: dict = {a: {} for a in approaches}
    kept = None
    max_len = source_model.cfg.max_len if source_model is not None else attention_params.get("max_len", 96)
    b_test = attention_batch(te, max_len)
    if "zero_shot" in approaches and source_model is not None:
        out["zero_shot"]["0"] = report(source_model.predict(b_test), 0)
    for k in fractions:
        n = max(2, int(round(len(order) * k / 100.0)))
        train = take_rows(data, np.sort(order[:n]))
        tr = train.frame
        groups = (tr["target"] + "|" + tr["task_id"]).to_numpy()
        key = f"{k:g}"
        if log:
            log(f"{data.target}: k={key}% ({n} target records)")
        if "finetune" in approaches and source_model is not None:
            model = copy.deepcopy(source_model)
            model.cfg.seed = seed
            if finetune_lr:  # a smaller step than from scratch: keep what the source learned
                model.cfg.lr = finetune_lr
            # at small k an epoch is a step or two: fine-tune for at least `finetune_steps` steps
            steps = max(1, model.steps_per_epoch(groups))
            epochs = max(finetune_epochs, -(-finetune_steps // steps))
            model.fit(attention_batch(tr, max_len), tr["label"].to_numpy(), groups, epochs=epochs)
            out["finetune"][key] = report(model.predict(b_test), n)
            if keep_finetuned_at is not None and abs(k - keep_finetuned_at) < 1e-9:
                kept = model
        for approach in ("scratch", "lightgbm_rank", "tvm_xgb"):
            if approach not in approaches:
                continue
            if approach == "tvm_xgb" and data.ms_features is None:
                continue
            model_key = "attention" if approach == "scratch" else approach
            scores, _, _ = fit_predict(model_key, train, test, feature_schema, feature_names, lgb_params, seed, attention_params)
            out[approach][key] = report(scores, n)
    return out, kept
