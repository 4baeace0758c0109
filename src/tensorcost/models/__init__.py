"""Cost models behind one contract (`base.CostModel`), and the registry of families.

Adding a family: a module with a `CostModel` subclass, and one line in `FAMILIES`.
Models know nothing of MLflow or DVC; `registry` moves their artifact directories around.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .base import CostModel, FeatureSchemaMismatch, ModelFormatError, ModelMetadata, read_metadata

# family -> "module:Class" (imported on first use: torch and xgboost stay unimported until needed)
FAMILIES = {
    "lightgbm": "lightgbm_model:LightGBMCostModel",
    "lightgbm_joint": "lightgbm_model:LightGBMJointCostModel",  # + MetaSchedule's per-store features
    "attention": "attention:AttentionCostModel",
    "tvm_xgb": "tvm_xgb:TVMXGBCostModel",
    "random": "random_model:RandomCostModel",
    "ensemble": "ensemble:EnsembleCostModel",  # a blend of other families' rankings
}


def family_class(family: str) -> type[CostModel]:
    if family not in FAMILIES:
        raise ModelFormatError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    module, cls = FAMILIES[family].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def create_model(family: str, target: str, feature_schema: str, feature_names: list[str], **params) -> CostModel:
    return family_class(family).create(target, feature_schema, feature_names, **params)


def load_model(path: str | Path, expected_feature_schema: str | None = None) -> CostModel:
    """Load any model family from its artifact directory, checking the feature schema."""
    path = Path(path)
    meta = read_metadata(path)
    if expected_feature_schema is not None and meta.feature_schema != expected_feature_schema:
        raise FeatureSchemaMismatch(
            f"{path}: model was trained on feature schema {meta.feature_schema!r}, "
            f"this code produces {expected_feature_schema!r}; retrain the model or use a matching tensorcost version"
        )
    return family_class(meta.family).load(path)


__all__ = ["FAMILIES", "CostModel", "FeatureSchemaMismatch", "ModelFormatError", "ModelMetadata", "create_model", "family_class", "load_model", "read_metadata"]
