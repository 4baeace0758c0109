"""The cost-model contract every family implements, in the spirit of MetaSchedule's
(`update` / `predict` / `save` / `load`):

- `create(target, feature_schema, feature_names, **params)`: an untrained model;
- `fit(train, valid=None, *, warm_start=False, seed=None, log=None)`: train on a feature table
  (continue from the current weights with `warm_start`: fine-tuning); returns learning curves;
- `predict(table)`: one score per row, higher = predicted faster, comparable within a task;
- `save(dir)` / `load(dir)`: `metadata.json` plus the family's own weight format, which loads
  without executing code (no pickle);
- `describe()`: what a model card needs.

Each family builds its own inputs from the feature table (`inputs` names the columns it reads),
so callers never branch on the family.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..digest import file_sha256
from ..errors import UserError
from ..features import FeatureTable
from ..safeio import atomic_folder, write_text

METADATA_FILE = "metadata.json"
MAX_METADATA_BYTES = 16 << 20  # architecture + normalisation statistics: kilobytes in practice


class FeatureSchemaMismatch(UserError, ValueError):
    """The model was trained on features this code no longer produces."""


class ModelFormatError(UserError, ValueError):
    """A model directory that is not a loadable tensorcost model."""


class FamilyConfig(BaseModel):
    """A family's params: typed, bounded, no unknown keys (defaults are written here, once)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


def _short_repr(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def make_config(cls: type[FamilyConfig], params: dict, where: str) -> FamilyConfig:
    """`cls(**params)`, a validation failure worded in one line (`where`: whose params)."""
    try:
        return cls(**params)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(params)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        got = "" if err["type"] in ("extra_forbidden", "missing") else f" (got {_short_repr(err.get('input'))})"
        raise ModelFormatError(f"{where}: {key}: {msg}{got}") from None


@dataclass
class ModelMetadata:
    family: str  # a key of models.FAMILIES
    feature_schema: str  # features.FEATURE_SCHEMA_VERSION at training time
    target: str
    objective: str
    feature_names: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    # sha256 of each weight file, written by save(): a damaged file is refused before its
    # family's parser (LightGBM's C++ aborts on some bit flips) sees it. Empty in older models.
    files_sha256: dict = field(default_factory=dict)
    # sha256 of every field above (`metadata_digest`), written by write(): an edited or damaged
    # metadata.json (an architecture that no longer matches the weights, another target) is
    # refused on a local load as the registry's artifact hashes refuse it on a registry load.
    metadata_sha256: str = ""

    def write(self, directory: Path) -> None:
        self.metadata_sha256 = _write_sealed(Path(directory) / METADATA_FILE, asdict(self))


def _write_sealed(path: Path, body: dict) -> str:
    """Write a metadata document with its digest (`metadata_digest`); returns the digest."""
    body["metadata_sha256"] = metadata_digest(body)

    write_text(path, json.dumps(body, indent=1, sort_keys=True))
    return body["metadata_sha256"]


def metadata_digest(fields: dict) -> str:
    """sha256 of a metadata document's fields but its own digest, in canonical JSON."""
    body = {k: v for k, v in fields.items() if k != "metadata_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()).hexdigest()


def seal_metadata(directory: str | Path) -> None:
    """Recompute a model directory's metadata digest after a deliberate edit of metadata.json
    (tools and tests that alter a model on purpose; what a loader cannot tell from a careful
    editor, the family's own structure checks still catch)."""
    path = Path(directory) / METADATA_FILE
    _write_sealed(path, json.loads(path.read_text()))


def artifact_file(directory: Path, name: str, max_bytes: int) -> Path:
    """`directory/name`, refused in one line unless it is a non-empty regular file of at most
    `max_bytes` (checked before a parser or an allocation sees it)."""
    path = Path(directory) / name
    if not path.is_file():
        raise ModelFormatError(f"{directory}: model file {name} is missing")
    size = path.stat().st_size
    if not 0 < size <= max_bytes:
        raise ModelFormatError(f"{path}: {size} bytes, expected 1..{max_bytes}")
    return path


def verify_weight_files(directory: Path, meta: ModelMetadata) -> None:
    """Every weight file the metadata lists has the recorded sha256 (one line if not)."""
    for name, digest in meta.files_sha256.items():
        if not isinstance(name, str) or "/" in name or name in ("", ".", "..", METADATA_FILE):
            raise ModelFormatError(f"{directory}: malformed model metadata: files_sha256 names {name!r}")
        path = Path(directory) / name
        if not path.is_file():
            raise ModelFormatError(f"{directory}: model file {name} is missing")
        if file_sha256(path) != digest:
            raise ModelFormatError(f"{path}: content does not match the sha256 recorded at save time (damaged or edited)")


def seal_unsealed(directory: str | Path) -> None:
    """Seal every metadata.json under `directory` that has no digest yet (models saved before it
    existed), leaving sealed ones as they are: for copies whose bytes a registry hash vouches for."""
    for path in sorted(Path(directory).rglob(METADATA_FILE)):
        try:
            body = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue  # the loader says what is wrong with it
        if isinstance(body, dict) and not body.get("metadata_sha256"):
            seal_metadata(path.parent)


def read_metadata(directory: str | Path) -> ModelMetadata:
    path = Path(directory) / METADATA_FILE
    if not path.exists():
        raise ModelFormatError(f"{directory}: not a tensorcost model directory (no {METADATA_FILE})")
    artifact_file(Path(directory), METADATA_FILE, MAX_METADATA_BYTES)
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict):
            raise TypeError("not a JSON object")
        digest = body.get("metadata_sha256")
        meta = ModelMetadata(**body)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: malformed model metadata: {str(exc)[:200]}") from None
    if not digest:
        raise ModelFormatError(f"{path}: no metadata_sha256 (written by a tensorcost before 2026-12-05, or edited): retrain the model")
    if digest != metadata_digest(body):
        raise ModelFormatError(f"{path}: content does not match its metadata_sha256 (edited or damaged); retrain or restore the model")
    # Types the loaders rely on (a hand-edited file must fail here, not deep in a family).
    if not (isinstance(meta.family, str) and isinstance(meta.params, dict) and isinstance(meta.extra, dict)
            and isinstance(meta.feature_names, list) and isinstance(meta.files_sha256, dict)):
        raise ModelFormatError(f"{path}: malformed model metadata: family, params, extra or feature_names has the wrong type")
    return meta


class CostModel(ABC):
    """Ranks programs of one task: higher score = predicted faster."""

    family: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]  # feature-table columns read: "flat", "tokens", "ms_features" (a blend: its members')
    can_warm_start: ClassVar[bool] = False
    # Gradient-boosted trees: the reference a model of another kind must come near to be served
    # (evaluation.serving_problems; issue 27: the attention model earns its place or steps aside).
    tree_model: ClassVar[bool] = False
    # Program embeddings (`embed`): what the attention-inspired pruning measures distances in.
    embeds: ClassVar[bool] = False
    # A blend of other models: its params' `members` name presets of params.yaml (params resolves them).
    member_presets: ClassVar[bool] = False
    # Trains and predicts from a store view a fragment at a time, MetaSchedule features included
    # (the view reads each fragment's rows of them); otherwise a model reading them gets the rows whole.
    streams_ms_features: ClassVar[bool] = False
    Config: ClassVar[type[FamilyConfig]]

    def __init__(self, metadata: ModelMetadata):
        self.metadata = metadata

    @classmethod
    def inputs_of(cls, params: dict) -> tuple[str, ...]:
        """The columns a model of this family with `params` reads, known before it exists (a
        blend reads what its members read)."""
        return cls.inputs

    @classmethod
    @abstractmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str], **params) -> "CostModel": ...

    @abstractmethod
    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, warm_start: bool = False, seed: int | None = None,
            log: Callable[[str], None] | None = None) -> dict[str, list[float]]: ...

    @abstractmethod
    def predict(self, table: FeatureTable) -> np.ndarray: ...

    def embed(self, table: FeatureTable) -> np.ndarray:
        """(n, d) program embeddings of `table`'s rows (families with `embeds`)."""
        raise UserError(f"the {self.family} family has no program embedding (families that have one: those with `embeds`)")

    @classmethod
    def reuse_trained(cls, params: dict, trained: dict[str, tuple["CostModel", float]], train: FeatureTable) -> tuple["CostModel", float] | None:
        """A model of this family built from models already trained on `train` (`trained`: preset
        -> (model, training seconds)) instead of training again, with its cost; None when it
        cannot be (every family but a blend of others)."""
        return None

    @classmethod
    def run_params(cls, params: dict) -> dict:
        """The family's params as an experiment run logs them (flat, short values)."""
        return dict(params)

    @abstractmethod
    def _save_weights(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load(cls, metadata: ModelMetadata, directory: Path) -> "CostModel": ...

    def save(self, directory: str | Path) -> None:
        with atomic_folder(directory) as tmp:  # a killed save leaves the previous model whole
            self._save_weights(tmp)
            self.metadata.files_sha256 = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != METADATA_FILE}
            self.metadata.write(tmp)

    @classmethod
    def load(cls, directory: str | Path) -> "CostModel":
        directory = Path(directory)
        meta = read_metadata(directory)
        verify_weight_files(directory, meta)
        return cls._load(meta, directory)

    def describe(self) -> dict:
        m = self.metadata
        return {"family": m.family, "objective": m.objective, "target": m.target, "feature_schema": m.feature_schema,
                "inputs": list(self.inputs), "params": dict(m.params)}

    def _check_trained(self, trained: bool) -> None:
        if not trained:
            raise RuntimeError(f"{self.family} model is not trained")
