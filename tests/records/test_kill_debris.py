"""No debris after kill -9 (issue 28, item 2): an import killed at random points leaves no
worker alive, and the next run removes the spool and half-written files the dead one left."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tensorcost.records import read_records
from tensorcost.records.importer import SPOOL_PREFIX, _spool_root
from tensorcost.safeio import sweep_stale

LOG = Path(__file__).resolve().parents[1] / "data" / "autoscheduler_logs" / "resnet-50-NHWC-B1-llvm.json"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_sweep_removes_only_what_dead_processes_left(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"out.parquet.{dead.pid}-abcd.tmp").write_text("half")
    (tmp_path / f"out.parquet.{os.getpid()}-abcd.tmp").write_text("ours, alive")
    (tmp_path / f"{SPOOL_PREFIX}{dead.pid}-xyz").mkdir()
    (tmp_path / "out.parquet.notapid.tmp").write_text("left alone")
    assert sweep_stale(tmp_path, "out.parquet.", ".tmp") == 1 and sweep_stale(tmp_path, SPOOL_PREFIX) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"out.parquet.{os.getpid()}-abcd.tmp", "out.parquet.notapid.tmp"])


@pytest.mark.slow
def test_an_import_killed_at_random_points_leaves_nothing_behind_after_the_next_run(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        (src / f"r{i}.json").write_bytes(LOG.read_bytes())
    out = tmp_path / "out" / "records.parquet"
    spool_root = Path(_spool_root(out.parent / "x"))
    rng = random.Random(0)
    killed = []
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(src), "--out", str(out), "--workers", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 4.0))
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed.append(proc.pid)
        deadline = time.time() + 10
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], f"attempt {attempt}: workers outlived the killed importer"
    done = subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(src), "--out", str(out), "--workers", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_records(out).num_rows == 40 * 26
    assert sorted(p.name for p in out.parent.iterdir()) == ["records.parquet"]  # no *.tmp of the killed runs
    left = [p for p in spool_root.iterdir() if any(p.name.startswith(f"{SPOOL_PREFIX}{pid}-") for pid in killed)]
    assert not left, left  # the killed importers' spools (other processes' are theirs)
