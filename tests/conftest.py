"""Fixtures shared by every room's tests: builders of canonical record rows and traces, feature
tables, a private MLflow store. Tests are grouped by room (tests/<room>/); `slow` marks those that
build and run real programs with TVM or run the whole DVC pipeline.

Helpers are exposed as fixtures that return factory functions (plain builders: `helpers.py`), so
test modules never import conftest directly.
"""

from __future__ import annotations

import json

import pytest

# A small MetaSchedule trace: [[instructions...], [[inst_index, decision], ...]].
MS_TRACE = (
    '[[["GetSBlock",[],["C","main"],["b0"]],'
    '["GetLoops",["b0"],[],["l1","l2"]],'
    '["SamplePerfectTile",["l1"],[2,64],["v3","v4"]],'
    '["Split",["l1","v3","v4"],[true,false],["l5","l6"]],'
    '["SampleCategorical",[],[[0,16,64,512],[0.25,0.25,0.25,0.25]],["v7"]],'
    '["Annotate",["b0","v7"],["meta_schedule.unroll_explicit"],[]]],'
    "[[2,[4,32]],[4,2]]]"
)

# A TenSet-style Ansor step list.
ANSOR_TRACE = '[["SP",2,0,1024,[2,1,4],1],["PR",2,0,"auto_unroll_max_step$8"],["AN",4,0,3]]'


def _record_row(
    i: int = 0,
    *,
    target: str = "cpu-avx2-t1",
    task_id: str = "00000000000000aa",
    latency: float | None = 1e-3,
    error_no: int = 0,
    **overrides,
) -> dict:
    """One canonical records row (every column of records.RECORDS_SCHEMA) with sane defaults."""
    trace = overrides.pop("trace", MS_TRACE.replace("64,512", f"64,{512 + i}"))
    prog = overrides.pop("program_id", f"{i:016x}")
    row = {
        "record_id": f"rec-{target}-{task_id}-{i:04d}",
        "source": "tvm-metaschedule",
        "target": target,
        "task_id": task_id,
        "task_name": "fused_matmul_add",
        "networks": json.dumps({"resnet_18": 2}),
        "task_weight": 2,
        "op_kind": "matmul",
        "shapes": json.dumps([[64, 64], [64, 64], [64, 64]]),
        "flops": 2.0 * 64 * 64 * 64,
        "bytes_moved": 3.0 * 64 * 64 * 4,
        "program_id": prog,
        "trace": trace,
        "latencies": [] if error_no else [latency, latency],
        "latency_s": None if error_no else latency,
        "error_no": error_no,
        "error_msg": "build failed" if error_no else None,
        "measured_at": 1_700_000_000.0 + i,
        "tvm_version": "0.27.0",
    }
    row.update(overrides)
    return row


@pytest.fixture
def make_row():
    """Factory: make_row(i, target=..., task_id=..., latency=..., error_no=..., **column_overrides)."""
    return _record_row


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
