"""Fixtures shared by every room's tests: builders of canonical record rows and traces, feature
tables, a private MLflow store. Tests are grouped by room (tests/<room>/); `slow` marks those that
build and run real programs with TVM or run the whole DVC pipeline.

Helpers are exposed as fixtures that return factory functions (plain builders: `helpers.py`), so
test modules never import conftest directly.
"""

from __future__ import annotations

import pytest

# the builders live in helpers.py (a test-support module benchmarks may import too)
from helpers import ANSOR_TRACE, MS_TRACE, record_row  # noqa: E402


@pytest.fixture
def make_row():
    """Factory: make_row(i, target=..., task_id=..., latency=..., error_no=..., **column_overrides)."""
    return record_row


@pytest.fixture
def ms_trace() -> str:
    return MS_TRACE


@pytest.fixture
def ansor_trace() -> str:
    return ANSOR_TRACE



@pytest.fixture
def make_table():
    """Factory: make_table(x, groups, latency, target=..., networks=...) -> FeatureTable."""
    from helpers import feature_table

    return feature_table


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow tracking store + registry (SQLite) private to the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts land under the test's directory
    return uri
