"""A real MLflow tracking server on a private PostgreSQL cluster, shared by this room's tests.

Started once per session in a fresh state dir and stopped at the end. Without PostgreSQL (not
installed, and not installable here) the tests skip with one line naming what is missing.
"""

from __future__ import annotations

import os
import sys
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tensorcost import registry
from helpers import synthetic_ranking_data


@pytest.fixture(scope="session")
def mlflow_server():
    """{tracking_uri, port, postgres_port, artifacts_destination, ...} of a running server."""
    from tensorcost.services import ServiceUnavailable
    from tensorcost.services.mlflow_server import start_mlflow_server, stop_mlflow_server

    # Not pytest's tmp dir: as root, PostgreSQL runs as the `postgres` user, which cannot
    # traverse pytest's 0700 base folder.
    state = Path(tempfile.mkdtemp(prefix="tensorcost-mlflow-server-"))
    state.chmod(0o755)
    try:
        try:
            info = start_mlflow_server(state)
        except ServiceUnavailable as exc:
            pytest.skip(f"no PostgreSQL-backed MLflow server: {exc}")
        yield {**info, "state": state}
    finally:
        stop_mlflow_server(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture()
def server_store(mlflow_server, tmp_path, monkeypatch):
    """MLFLOW_TRACKING_URI pointed at the server, the working directory a fresh folder (so a
    client that wrote artifacts locally would leave them there)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server["tracking_uri"])
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(tmp_path)
    return mlflow_server


@pytest.fixture()
def register_lightgbm(tmp_path):
    """Factory: register_lightgbm(target, name, label_fn) -> (version, ranking report): a real
    small LightGBM ranker (as in tests/registry/test_registry.py) registered as the candidate."""
    from helpers import feature_table

    from tensorcost.features import FEATURE_SCHEMA_VERSION
    from tensorcost.metrics import ranking_report
    from tensorcost.models.lightgbm_model import LightGBMCostModel

    def register(target: str, name: str, label_fn):
        x, labels, latency, groups = synthetic_ranking_data()
        test = np.arange(len(x)) % 4 == 0
        model = LightGBMCostModel.create(target, FEATURE_SCHEMA_VERSION, ["f0", "f1", "f2", "f3"], objective="lambdarank", num_boost_round=30,
                                         min_data_in_leaf=3, seed=0, deterministic=True, num_threads=1)
        train = feature_table(x[~test], groups[~test], latency[~test])
        train.frame["label"] = label_fn(labels)[~test]
        model.fit(train)
        rep = ranking_report(groups[test].tolist(), model.predict(feature_table(x[test], groups[test], latency[test])), latency[test])
        out = tmp_path / name
        model.save(out)
        tags = {"target": target, "model_family": "lightgbm", "feature_schema": FEATURE_SCHEMA_VERSION, "eval_data_hash": "synthetic-v1",
                "validation": "passed", **{f"metric.{k}": v for k, v in rep.to_dict().items()}}
        version = registry.log_and_register(out, target, experiment="test-server", run_name=name, params={}, metrics=rep.to_dict(), tags=tags,
                                            alias=registry.CANDIDATE)
        return version, rep

    return register


@pytest.fixture()
def probe_features():
    """(x, groups, latency) rows to call a loaded model's predict on."""
    x, _, latency, groups = synthetic_ranking_data()
    return x[:5], groups[:5], latency[:5]
