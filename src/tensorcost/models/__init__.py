"""Cost models behind one contract (fit / predict / save / load + the feature schema they need).

Models know nothing of MLflow or DVC; `registry` moves their artifact directories around.
An artifact directory always holds `metadata.json` (family, feature schema, target...) plus the
family's own weight files in a format that loads without executing code (no pickle).
"""

from __future__ import annotations

from pathlib import Path

from .base import CostModel, FeatureSchemaMismatch, ModelMetadata, read_metadata

FAMILIES = ("lightgbm", "tvm_xgb", "attention")


def load_model(path: str | Path, expected_feature_schema: str | None = None) -> CostModel:
    """Load any model family from its artifact directory, checking the feature schema."""
    path = Path(path)
    meta = read_metadata(path)
    if expected_feature_schema is not None and meta.feature_schema != expected_feature_schema:
        raise FeatureSchemaMismatch(
            f"{path}: model was trained on feature schema {meta.feature_schema!r}, "
            f"this code produces {expected_feature_schema!r}; retrain the model or use a matching tensorcost version"
        )
    if meta.family == "lightgbm":
        from .lightgbm_model import LightGBMCostModel

        return LightGBMCostModel.load(path)
    if meta.family == "attention":
        from .attention import AttentionCostModel

        return AttentionCostModel.load(path)
    if meta.family == "tvm_xgb":
        from .tvm_xgb import TVMXGBCostModel

        return TVMXGBCostModel.load(path)
    raise ValueError(f"{path}: unknown model family {meta.family!r}; known: {', '.join(FAMILIES)}")


__all__ = ["CostModel", "FeatureSchemaMismatch", "ModelMetadata", "load_model", "read_metadata"]
