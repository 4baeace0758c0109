"""The collector killed mid-run with a real signal, then restarted, ends with exactly the
records a clean run has: every program once, none lost, none duplicated."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tensorcost import records as rec
from tensorcost.hardware import available_targets

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _target() -> str:
    ts = available_targets()
    return next((t for t in ("cpu-avx2-t1", "cpu-sse42-t1") if t in ts), sorted(ts)[0])


def _workdir(tmp_path: Path, target: str) -> Path:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["targets"] = [target]
    p["zoo"]["networks"] = ["tiny_resnet"]
    p["sample"].update({"reference_target": target, "max_tasks": 3, "programs_per_task": 8, "min_flops": 0})
    p["measure"].update({"number": 1, "repeat": 2, "min_repeat_ms": 5, "run_batch": 4})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    return tmp_path


def _cli(*args):
    return [sys.executable, "-m", "tensorcost.cli", *args]


def _records(out: Path):
    return rec.read_records(out / "parts")


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    target = _target()
    work = _workdir(tmp_path, target)
    subprocess.run(_cli("stage", "sample"), cwd=work, check=True, capture_output=True)
    prog = pq.read_table(work / "data/programs/programs.parquet").to_pylist()
    expected = {rec.record_id(target, r["task_id"], r["program_id"]) for r in prog}
    assert len(expected) == len(prog) >= 12

    parts = work / "data/raw" / target / "parts"
    proc = subprocess.Popen(_cli("stage", "collect", "--target", target), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(parts.glob("*.parquet"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the collector and its builder/runner workers
    proc.wait()
    partial = _records(work / "data/raw" / target)
    done_before = set(partial.column("record_id").to_pylist())
    assert 0 < len(done_before) < len(expected), "the kill must land mid-run"

    resumed = subprocess.run(_cli("stage", "collect", "--target", target), cwd=work, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    table = _records(work / "data/raw" / target)
    ids = table.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)), "no duplicates"
    assert set(ids) == expected, "exactly the records of a clean run"
    assert f"'programs_already_measured': {len(done_before)}" in resumed.stderr

    # Running again measures nothing more.
    again = subprocess.run(_cli("stage", "collect", "--target", target), cwd=work, capture_output=True, text=True)
    assert again.returncode == 0 and "'measured': 0" in again.stderr
    assert _records(work / "data/raw" / target).num_rows == len(expected)
