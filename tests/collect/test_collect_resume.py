"""The collector killed mid-run with a real signal, then restarted, ends with exactly the
records a clean run has: every program once, none lost, none duplicated."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.collect import fresh_sample, load_task_set

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _workdir(tmp_path: Path) -> Path:
    """A working directory with the bundled CPU program set and params that sample 12 programs."""
    shutil.copytree(REPO / "data/bundled/programs/cpu", tmp_path / "data/bundled/programs/cpu")
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["host"].update({"tasks": 3, "programs_per_task": 4})
    p["measure"].update({"number": 1, "repeat": 2, "min_repeat_ms": 5, "run_batch": 4})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    subprocess.run(_cli("stage", "host"), cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def _cli(*args):
    return [sys.executable, "-m", "tensorcost.cli", *args]


def _records(out: Path):
    return rec.read_records(out / "parts")


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    work = _workdir(tmp_path)
    target = json.loads((work / "data/host/target.json").read_text())["target_id"]
    tasks, programs, meta = load_task_set(work / "data/bundled/programs/cpu")
    # host.programs: fresh (the default): the bundled sample's tasks, programs the set lacks, drawn
    # by a seed, so the run after the kill draws the same ones
    chosen = fresh_sample(tasks, programs, dataset.sample_programs(programs, 3, 4, 0), meta, 0)
    expected = {rec.record_id(target, t, rec.program_id(tr)) for t, trs in chosen.items() for tr in trs}
    assert len(expected) == 12
    held = {(t, rec.program_id(tr)) for t, trs in programs.items() for tr in trs}
    assert not {(t, rec.program_id(tr)) for t, trs in chosen.items() for tr in trs} & held

    out = work / "data/raw/host"
    parts = out / "parts"
    proc = subprocess.Popen(_cli("stage", "collect"), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(parts.glob("*.parquet"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the collector and its builder/runner workers
    proc.wait()
    partial = _records(out)
    done_before = set(partial.column("record_id").to_pylist())
    assert 0 < len(done_before) < len(expected), "the kill must land mid-run"

    resumed = subprocess.run(_cli("stage", "collect"), cwd=work, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    table = _records(out)
    ids = table.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)), "no duplicates"
    assert set(ids) == expected, "exactly the records of a clean run"
    assert set(table.column("target").to_pylist()) == {target}
    assert f"'programs_already_measured': {len(done_before)}" in resumed.stderr

    # Running again measures nothing more.
    again = subprocess.run(_cli("stage", "collect"), cwd=work, capture_output=True, text=True)
    assert again.returncode == 0 and "'measured': 0" in again.stderr
    assert _records(out).num_rows == len(expected)
