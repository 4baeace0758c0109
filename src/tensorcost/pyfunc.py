"""tensorcost models as MLflow pyfunc models: `mlflow.pyfunc.load_model("models:/tensorcost-<target>@champion")`
scores a feature table, and `mlflow models serve` answers.

A registered version's folder holds, beside the model's own files, an `MLmodel` whose
`python_function` flavour names `loader_module: tensorcost.pyfunc`: MLflow imports this installed
module (nothing is unpickled and no code comes from the artifact) and calls `_load_pyfunc(path)`,
which loads the model through the project's own loader (its metadata digest, weight hashes and
structure checks). The input is a feature frame as `features.featurize_table` writes it: a row
per program with `flat` (the flat features) and, for the families that read them, `n_tokens` and
`tokens` (the schedule primitives, flattened); `task_id` is optional. The output: one score per
row (higher = faster; compare within a task).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .features import FeatureTable
from .models import load_model
from .safeio import write_text

LOADER_MODULE = "tensorcost.pyfunc"
MLMODEL_FILE = "MLmodel"
INPUT_EXAMPLE_FILE = "input_example.json"
INPUT_COLUMNS = ("task_id", "flat", "n_tokens", "tokens")
EXAMPLE_ROWS = 3


def example_frame(table, rows: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """The first `rows` rows of a FeatureTable (or store view) as the pyfunc input frame."""
    part = table.take(np.arange(min(rows, len(table)))) if len(table) > rows else table
    if not hasattr(part, "to_frame"):  # a store view: these rows' numbers read now
        part = part.materialize()
    frame = part.to_frame()
    return frame[[c for c in INPUT_COLUMNS if c in frame.columns]].reset_index(drop=True)


def write_pyfunc_files(model_dir: str | Path, example: pd.DataFrame) -> None:
    """Make a saved model folder an MLflow pyfunc model too: `MLmodel` (the loader module, the
    signature inferred from `example`, the input example) and `input_example.json`."""
    import mlflow
    from mlflow.models import Model, infer_signature
    from mlflow.pyfunc import add_to_model

    model_dir = Path(model_dir)
    cols = [c for c in INPUT_COLUMNS if c in example.columns]
    example = example[cols].reset_index(drop=True).copy()
    for c in ("flat", "tokens"):  # double arrays: JSON numbers (`mlflow models serve`) convert to them safely
        if c in example.columns:
            example[c] = [np.asarray(v, dtype=np.float64) for v in example[c]]
    model = Model(signature=infer_signature(example), saved_input_example_info={"artifact_path": INPUT_EXAMPLE_FILE, "type": "dataframe", "pandas_orient": "split"})
    add_to_model(model, loader_module=LOADER_MODULE, python_version=platform.python_version())
    data = [[v.tolist() if isinstance(v, np.ndarray) else (v.item() if hasattr(v, "item") else v) for v in row] for row in example.itertuples(index=False)]
    write_text(model_dir / INPUT_EXAMPLE_FILE, json.dumps({"columns": cols, "data": data}))
    model.mlflow_version = mlflow.__version__
    write_text(model_dir / MLMODEL_FILE, model.to_yaml())


class PyfuncModel:
    """What `mlflow.pyfunc.load_model` wraps: `predict(frame) -> scores`."""

    def __init__(self, model):
        self.model = model

    def predict(self, model_input, params=None) -> np.ndarray:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        needs = set(self.model.inputs) - {"flat"}
        if "flat" not in frame.columns:
            raise UserError("a tensorcost model scores a feature frame with a `flat` column (features.featurize_table's output)")
        if "ms_features" in needs:
            raise UserError(f"{self.model.family} reads MetaSchedule's per-store features, which a feature frame does not carry: "
                            "load it with tensorcost.registry.load_by_alias instead")
        if "tokens" in needs and not {"tokens", "n_tokens"} <= set(frame.columns):
            raise UserError(f"{self.model.family} reads the schedule primitives: give `n_tokens` and `tokens` columns too")
        frame = frame.copy()
        frame["flat"] = [np.asarray(v, dtype=np.float32) for v in frame["flat"]]
        if "tokens" in frame.columns:
            frame["tokens"] = [np.asarray(v, dtype=np.float32) for v in frame["tokens"]]
        if "task_id" not in frame.columns:
            frame["task_id"] = "task"
        if "tokens" not in frame.columns:  # a flat-only family: no primitives needed
            frame["n_tokens"] = 0
        return np.asarray(self.model.predict(FeatureTable(frame, self.model.metadata.target)), dtype=np.float64)


def _load_pyfunc(path: str) -> PyfuncModel:
    """MLflow's entry point (the MLmodel names this module): the project's checked loader."""
    return PyfuncModel(load_model(Path(path)))
