"""The cost-model contract shared by every family."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

METADATA_FILE = "metadata.json"


class FeatureSchemaMismatch(ValueError):
    """The model was trained on features this code no longer produces."""


@dataclass
class ModelMetadata:
    family: str  # "lightgbm" | "attention" | ...
    feature_schema: str  # features.FEATURE_SCHEMA_VERSION at training time
    target: str
    objective: str
    feature_names: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        (directory / METADATA_FILE).write_text(json.dumps(asdict(self), indent=1, sort_keys=True))


def read_metadata(directory: str | Path) -> ModelMetadata:
    path = Path(directory) / METADATA_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory}: not a tensorcost model directory (no {METADATA_FILE})")
    try:
        return ModelMetadata(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: malformed model metadata: {exc}") from None


class CostModel(Protocol):
    """Ranks programs of one task: higher score = predicted faster."""

    metadata: ModelMetadata

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: Sequence[str]) -> None: ...

    def predict(self, features: np.ndarray) -> np.ndarray: ...

    def save(self, directory: str | Path) -> None: ...

    @classmethod
    def load(cls, directory: str | Path) -> "CostModel": ...
