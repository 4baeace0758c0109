"""Registered versions are MLflow pyfunc models too: `mlflow.pyfunc.load_model` scores a feature
frame as the project's loader does, `mlflow models serve` answers, and nothing is unpickled."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tensorcost.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TARGET = "zen5-2c.avx2-t1"


@pytest.fixture(scope="module")
def frame():
    import pyarrow as pa
    import pyarrow.compute as pc

    from tensorcost import dataset
    from tensorcost.features import featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES, catalog_target

    table = dataset.bundled_tables([TARGET], REPO / dataset.BUNDLED_DIR)[TARGET]
    tasks = sorted(set(table.column("task_id").to_pylist()))[:3]
    table = table.filter(pc.is_in(table["task_id"], value_set=pa.array(tasks)))
    return featurize_table(table, catalog_target(TARGET).features(), HARDWARE_FEATURE_NAMES, slot=TARGET)


def _register(tmp_path, frame, family: str, params: dict):
    from tensorcost import registry
    from tensorcost.evaluation import ModelSpec
    from tensorcost.features import FEATURE_SCHEMA_VERSION, FeatureTable
    from tensorcost.pyfunc import example_frame

    data = FeatureTable(frame, TARGET)
    model = ModelSpec(family, params).create(data, target=TARGET)
    model.fit(data)
    model.save(tmp_path / family)
    version = registry.log_and_register(tmp_path / family, TARGET, experiment="t", run_name=family, params={}, metrics={},
                                        tags={"target": TARGET, "feature_schema": FEATURE_SCHEMA_VERSION, "validation": "passed"},
                                        alias=registry.CANDIDATE, input_example=example_frame(data))
    return model, data, version


@pytest.mark.parametrize("family,params", [("lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1}), ("attention", {"epochs": 1})])
def test_pyfunc_load_scores_as_the_project_loader(tmp_path, mlflow_store, frame, family, params):
    import mlflow.pyfunc

    from tensorcost import registry

    model, data, version = _register(tmp_path, frame, family, params)
    pf = mlflow.pyfunc.load_model(f"models:/tensorcost-{TARGET}@candidate")
    inputs = frame[["task_id", "flat", "n_tokens", "tokens"]]
    np.testing.assert_allclose(pf.predict(inputs), model.predict(data), rtol=1e-6)
    assert pf.metadata.get_input_schema().input_names() == ["task_id", "flat", "n_tokens", "tokens"]
    mlmodel = (tmp_path / family / "MLmodel").read_text()
    assert "loader_module: tensorcost.pyfunc" in mlmodel and "python_model" not in mlmodel
    assert not list((tmp_path / family).rglob("*.pkl"))  # nothing pickled
    ours, _ = registry.load_by_alias(TARGET, registry.CANDIDATE, fallback=None)  # the project's loader reads the same folder
    np.testing.assert_allclose(ours.predict(data), model.predict(data), rtol=1e-6)


def test_what_a_family_cannot_score_is_one_line(tmp_path, mlflow_store, frame):
    from tensorcost.pyfunc import _load_pyfunc

    model, _, _ = _register(tmp_path, frame, "attention", {"epochs": 1})
    pf = _load_pyfunc(str(tmp_path / "attention"))
    with pytest.raises(UserError, match="give `n_tokens` and `tokens`"):
        pf.predict(frame[["task_id", "flat"]])
    with pytest.raises(UserError, match="a `flat` column"):
        pf.predict(frame[["task_id"]])


def test_a_changed_mlmodel_is_refused_by_the_project_loader(tmp_path, mlflow_store, frame):
    from tensorcost import registry

    _register(tmp_path, frame, "lightgbm", {"objective": "regression", "num_boost_round": 5, "num_threads": 1})
    stored = next(Path(mlflow_store.removeprefix("sqlite:///")).parent.rglob("MLmodel"))
    stored.write_text(stored.read_text().replace("loader_module: tensorcost.pyfunc", "loader_module: os"))
    with pytest.raises(registry.ArtifactIntegrityError, match="MLmodel differs"):
        registry.load_by_alias(TARGET, registry.CANDIDATE, fallback=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers(tmp_path, mlflow_store, frame):
    model, data, _ = _register(tmp_path, frame, "lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1})
    port = _free_port()
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}", "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.Popen([f"{bindir}/mlflow", "models", "serve", "-m", f"models:/tensorcost-{TARGET}@candidate", "--env-manager", "local", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        rows = frame[["task_id", "flat", "n_tokens", "tokens"]].head(5)
        body = {"dataframe_split": {"columns": list(rows.columns), "data": [[v.tolist() if hasattr(v, "tolist") else v for v in r] for r in rows.itertuples(index=False)]}}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
        np.testing.assert_allclose(answer["predictions"], model.predict(data)[:5], rtol=1e-5)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
