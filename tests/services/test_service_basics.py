"""What every service of the stack relies on: a missing program is one readable line, and stopping
a daemon stops its whole session (workers included) without leaving zombies."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tensorcost.services import ServiceUnavailable, alive, require_program, spawn, stop_pid


def test_a_missing_program_names_its_package_in_one_line():
    with pytest.raises(ServiceUnavailable) as err:
        require_program("tensorcost-no-such-daemon", "tensorcost-no-such-package", install=False)
    msg = str(err.value)
    assert "tensorcost-no-such-daemon is missing" in msg and "`tensorcost-no-such-package`" in msg and "\n" not in msg


def test_stop_pid_stops_the_daemon_and_the_workers_it_started(tmp_path):
    # A "server" that starts a worker in its session and prints the worker's pid, like uvicorn or TVM's tracker.
    script = "import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); print(w.pid, flush=True); time.sleep(300)"
    proc = spawn([sys.executable, "-c", script], tmp_path / "daemon.log")
    deadline = time.monotonic() + 30
    while not (tmp_path / "daemon.log").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int((tmp_path / "daemon.log").read_text().split()[0])
    assert alive(proc.pid) and alive(worker)
    assert stop_pid(proc.pid, timeout=10)
    # stop_pid returns only once the whole session is down: no polling here
    assert not alive(proc.pid) and not alive(worker)
    assert not stop_pid(proc.pid)  # already gone: nothing to stop


def test_alive_is_false_for_a_zombie():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = open(f"/proc/{proc.pid}/stat").read()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not alive(proc.pid)  # exited, not reaped yet: kill(pid, 0) would still say yes
    proc.wait()
