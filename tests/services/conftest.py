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

import pytest

from helpers import register_small_lightgbm, synthetic_ranking_data


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

    def register(target: str, name: str, label_fn):
        return register_small_lightgbm(tmp_path, target, name, label_fn, experiment="test-server")

    return register


@pytest.fixture()
def probe_features():
    """(x, groups, latency) rows to call a loaded model's predict on."""
    x, _, latency, groups = synthetic_ranking_data()
    return x[:5], groups[:5], latency[:5]
