
import pytest


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow tracking store + registry (SQLite) private to the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts land under the test's directory
    return uri
