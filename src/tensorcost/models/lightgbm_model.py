"""LightGBM cost model (the TenSet-style GBDT baseline): ranking or regression on flat features."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .base import ModelMetadata, read_metadata

MODEL_FILE = "model.txt"  # LightGBM's own text format: loads without executing code


def _group_sizes(groups: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Order rows by group (stable) and return the permutation and group sizes LightGBM needs."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    _, sizes = np.unique(groups[order], return_counts=True)
    return order, sizes.tolist()


class LightGBMCostModel:
    def __init__(self, metadata: ModelMetadata, booster=None):
        self.metadata = metadata
        self.booster = booster

    @classmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str], objective: str = "lambdarank", **params) -> "LightGBMCostModel":
        if objective not in ("lambdarank", "regression"):
            raise ValueError(f"objective must be 'lambdarank' or 'regression', got {objective!r}")
        return cls(ModelMetadata(family="lightgbm", feature_schema=feature_schema, target=target, objective=objective, feature_names=feature_names, params=params))

    def _lgb_params(self) -> dict:
        p = dict(self.metadata.params)
        rounds = p.pop("num_boost_round", 200)
        base = {"objective": self.metadata.objective, "verbosity": -1, "num_threads": p.pop("num_threads", 0)}
        if self.metadata.objective == "lambdarank":
            # Labels are throughputs in (0, 1]; lambdarank needs integer relevance grades.
            base.update({"lambdarank_truncation_level": p.pop("lambdarank_truncation_level", 20)})
        base.update(p)
        return base | {"num_boost_round": rounds}

    @staticmethod
    def relevance(labels: np.ndarray, levels: int = 31) -> np.ndarray:
        """Throughput label in (0, 1] -> integer grade 0..levels-1 (lambdarank's label gain)."""
        return np.clip(np.floor(np.asarray(labels) * (levels - 1) + 0.5), 0, levels - 1).astype(np.int32)

    def _dataset(self, features, labels, groups, reference=None):
        import lightgbm as lgb

        order, sizes = _group_sizes(groups)
        x, y = np.asarray(features)[order], np.asarray(labels)[order]
        if self.metadata.objective == "lambdarank":
            return lgb.Dataset(x, self.relevance(y), group=sizes, reference=reference, free_raw_data=True)
        return lgb.Dataset(x, y, reference=reference, free_raw_data=True)

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: Sequence[str], valid: tuple | None = None) -> dict[str, list[float]]:
        """Train; with `valid = (features, labels, groups)` also record learning curves on it
        (recorded only: no early stopping). Returns {metric: values per boosting round}."""
        import lightgbm as lgb

        params = self._lgb_params()
        rounds = params.pop("num_boost_round")
        if self.metadata.objective == "lambdarank":
            params["label_gain"] = list(range(31))
            params.setdefault("eval_at", [1, 5])
        train = self._dataset(features, labels, groups)
        evals: dict = {}
        kwargs: dict = {}
        if valid is not None:
            kwargs = {"valid_sets": [self._dataset(*valid, reference=train)], "valid_names": ["valid"], "callbacks": [lgb.record_evaluation(evals)]}
        self.booster = lgb.train(params, train, num_boost_round=rounds, **kwargs)
        return {f"valid_{k}".replace("@", "_at_"): list(map(float, v)) for k, v in evals.get("valid", {}).items()}

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("model is not trained")
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.metadata.feature_names):
            raise ValueError(f"expected features of shape (n, {len(self.metadata.feature_names)}), got {x.shape}")
        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        self.metadata.write(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "LightGBMCostModel":
        import lightgbm as lgb

        directory = Path(directory)
        meta = read_metadata(directory)
        booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
        return cls(meta, booster)
