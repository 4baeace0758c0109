"""Transfer to new target hardware: the learning-curve study (the paper's central claim).

On the target's records, a fixed test side is held out by program hash; the rest is the pool
from which the first k% (by a second hash, so smaller k is a subset of larger k) is the target
data an approach may use. Approaches, all scored on the same test side:

- `zero_shot:<source>` (k = 0): a source platform's model as pulled from the registry;
- `finetune:<source>`: that model trained further on k% of the target's records (`warm_start`);
- every peer (`attention`, `lightgbm_rank`, `tvm_xgb`...): trained from scratch on the same k%.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Callable, Sequence

import numpy as np

from .evaluation import ModelSpec, fit_predict
from .features import FeatureTable
from .metrics import ranking_report
from .models import CostModel


def _h(key: str, salt: str) -> float:
    return int.from_bytes(hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=8).digest(), "little") / 2**64


def target_split(data: FeatureTable, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(test mask, pool order): the test side by program hash; the pool ranked by a second hash."""
    keys = [f"{t}|{p}" for t, p in zip(data.frame["task_id"], data.frame["program_id"])]
    test = np.array([_h(k, f"test{seed}") < test_fraction for k in keys])
    pool = np.flatnonzero(~test)
    order = pool[np.argsort([_h(keys[i], f"pool{seed}") for i in pool], kind="stable")]
    return test, order


def transfer_study(
    sources: dict[str, CostModel],
    data: FeatureTable,
    fractions: Sequence[float],
    peers: dict[str, ModelSpec],
    *,
    test_fraction: float,
    seed: int,
    feature_schema: str,
    feature_names: list[str],
    log: Callable[[str], None] | None = None,
    keep_finetuned_at: float | None = None,
) -> tuple[dict, dict[str, CostModel]]:
    """Returns ({approach: {k: {"pca", "top5", "top1", "n_train"}}}, {source: its model fine-tuned
    on `keep_finetuned_at`%}). Sources that cannot continue training get no `finetune` curve."""
    test_mask, order = target_split(data, test_fraction, seed)
    test = data.take(np.flatnonzero(test_mask))
    te = test.frame
    weights = test.task_weights()

    def report(scores, n_train):
        r = ranking_report(te["task_id"].tolist(), scores, te["latency_s"].to_numpy(), weights)
        return {"pca": r.pca, "top5": r.top5, "top1": r.top1, "n_train": int(n_train)}

    curves: dict = {}
    kept: dict[str, CostModel] = {}
    for name, model in sources.items():
        curves[f"zero_shot:{name}"] = {"0": report(model.predict(test), 0)}
    for k in fractions:
        n = max(2, int(round(len(order) * k / 100.0)))
        train = data.take(np.sort(order[:n]))
        key = f"{k:g}"
        if log:
            log(f"{data.slot}: k={key}% ({n} target records)")
        for name, source in sources.items():
            if not source.can_warm_start:
                continue
            model = copy.deepcopy(source)
            model.fit(train, warm_start=True, seed=seed)
            curves.setdefault(f"finetune:{name}", {})[key] = report(model.predict(test), n)
            if keep_finetuned_at is not None and abs(k - keep_finetuned_at) < 1e-9:
                kept[name] = model
        for name, spec in peers.items():
            if "ms_features" in spec.inputs and data.ms_features is None:
                continue  # e.g. tvm_xgb on a target without MetaSchedule features
            scores, _, _ = fit_predict(spec, train, test, feature_schema, feature_names)
            curves.setdefault(name, {})[key] = report(scores, n)
    return curves, kept
