"""The floor every model must beat: uniform random scores (seeded, so runs repeat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..features import FeatureTable
from pydantic import Field

from .base import CostModel, FamilyConfig, ModelMetadata, make_config


class RandomConfig(FamilyConfig):
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's seed range


class RandomCostModel(CostModel):
    family = "random"
    inputs = ()
    can_warm_start = True
    Config = RandomConfig

    def __init__(self, metadata: ModelMetadata):
        super().__init__(metadata)
        self.rng = np.random.default_rng(int(metadata.params.get("seed", 0)))

    @classmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str] | None = None, **params) -> "RandomCostModel":
        cfg = make_config(RandomConfig, params, "random params")
        return cls(ModelMetadata(family="random", feature_schema=feature_schema, target=target, objective="none", params=cfg.model_dump()))

    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, warm_start: bool = False, seed: int | None = None, log=None) -> dict[str, list[float]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return {}

    def predict(self, table: FeatureTable) -> np.ndarray:
        return self.rng.random(len(table))

    def _save_weights(self, directory: Path) -> None:
        pass  # nothing but the seed, which is in the metadata

    @classmethod
    def _load(cls, metadata: ModelMetadata, directory: Path) -> "RandomCostModel":
        make_config(RandomConfig, metadata.params, f"{directory}: random params")  # a bounded seed, or one line
        return cls(metadata)
