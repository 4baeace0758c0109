"""First use of a brand-new SQLite store by several processes at once (issue 17): MLflow creates
and migrates the schema on first touch, and concurrent migrations used to fail or leave the
store broken (`table _alembic_tmp_latest_metrics already exists`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tensorcost import registry

TARGET = "testcpu-1c.avx2-t1"
N = 8

WORKER = """
import sys, time
from pathlib import Path

import mlflow  # noqa: F401  (imported before the barrier: only the store's first touch races)

from tensorcost import registry
from tensorcost.models import create_model

i, n = sys.argv[1], int(sys.argv[2])
d = Path(f"model-{{i}}")
create_model("random", "{target}", "tc-feat-race", [], seed=int(i)).save(d)
Path(f"ready-{{i}}").touch()
deadline = time.time() + 300
while len(list(Path(".").glob("ready-*"))) < n and time.time() < deadline:
    time.sleep(0.005)
tags = {{"target": "{target}", "model_family": "random", "feature_schema": "tc-feat-race", "eval_data_hash": "race",
        "validation": "passed", "metric.pca": 0.5}}
v = registry.log_and_register(d, "{target}", experiment="race", run_name=f"race-{{i}}", params={{}}, metrics={{"pca": 0.5}}, tags=tags)
r = registry.promote("{target}", v, metric_keys=("pca",))
print(r.promoted, r.version, r.previous, r.reason)
"""


@pytest.mark.slow
def test_eight_processes_on_a_brand_new_store(mlflow_store, tmp_path):
    assert not (tmp_path / "mlflow.db").exists()  # brand new: the workers create it
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(target=TARGET))
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(N)], cwd=tmp_path, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(N)]
    outs = [p.communicate(timeout=600) for p in procs]
    failed = [(p.returncode, err[-1500:]) for p, (_, err) in zip(procs, outs) if p.returncode != 0]
    assert not failed, f"{len(failed)} of {N} workers failed after {time.time() - t0:.0f} s: {failed}"
    # every registration and every promotion landed, as one chain of champions
    events = registry.history(TARGET)
    assert len(events) == N and all(e["promoted"] == "true" for e in events), events
    current = ""
    for e in events:
        assert e["previous"] == current, events
        current = e["version"]
    assert registry.get_version(TARGET, registry.CHAMPION).version == current
    assert sorted(int(e["version"]) for e in events) == list(range(1, N + 1))
    # and the store is usable afterwards: load the champion through the verified path
    model, resolved = registry.load_by_alias(TARGET)
    assert resolved.version == current and model.family == "random"
