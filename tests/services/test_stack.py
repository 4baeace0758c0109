"""`make services` / `make services-stop`: the whole team stack up, each part answering, ports in
the env file, the repository's `team` DVC remote configured, and nothing left running after down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tensorcost.services import find_program, port_open

BIN = Path(sys.executable).parent


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture()
def stack_env(tmp_path):
    for program, package, dirs in (("initdb", "postgresql", ("/usr/lib/postgresql/*/bin",)), ("sshd", "openssh-server", ("/usr/sbin",))):
        if find_program(program, dirs) is None:
            pytest.skip(f"the team stack needs {program} (Debian package {package}), which is not installed here (make system-deps)")
    state = Path(tempfile.mkdtemp(prefix="tensorcost-stack-"))  # PostgreSQL's user must traverse it (not pytest's 0700 dir)
    state.chmod(0o755)
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "TENSORCOST_SERVICES_DIR": str(state), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    _run(["git", "init", "-q"], repo, env)
    _run(["dvc", "init", "-q"], repo, env)
    try:
        yield repo, state, env
    finally:
        subprocess.run([str(BIN / "tensorcost"), "services", "down"], cwd=repo, env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
def test_services_up_status_and_down(stack_env):
    repo, state, env = stack_env
    up = _run([str(BIN / "tensorcost"), "services", "up"], repo, env, timeout=400)
    assert "mlflow    http://127.0.0.1:" in up.stdout and "dvc ssh   ssh://" in up.stdout and "tvm rpc   tracker" in up.stdout
    status = json.loads(_run([str(BIN / "tensorcost"), "services", "status", "--json"], repo, env).stdout)
    assert set(status) == {"mlflow", "dvc-ssh", "rpc"} and "1 server(s)" in status["rpc"]

    exports = dict(line.removeprefix("export ").split("=", 1) for line in (state / "env.sh").read_text().splitlines() if line.startswith("export "))
    assert exports["MLFLOW_TRACKING_URI"] == status["mlflow"]
    # The registry on the server answers a real command through the env file's URI.
    listed = _run([str(BIN / "tensorcost"), "registry", "list", "--json"], repo, {**env, "MLFLOW_TRACKING_URI": exports["MLFLOW_TRACKING_URI"]})
    assert json.loads(listed.stdout) == []
    # The repository's `team` remote is the SSH one, and data round-trips through it.
    assert _run(["dvc", "remote", "list"], repo, env).stdout.split()[:2] == ["team", status["dvc-ssh"]]
    (repo / "data.txt").write_text("a measurement\n")
    _run(["dvc", "add", "data.txt"], repo, env)
    _run(["dvc", "push", "-r", "team"], repo, env)
    assert any((state / "dvc-remote").rglob("*")), "nothing reached the remote's storage"

    # Idempotent: a second `up` finds everything running and starts nothing new.
    pids = {f: json.loads((state / f).read_text()) for f in ("mlflow.json", "ssh.json", "rpc.json")}
    _run([str(BIN / "tensorcost"), "services", "up"], repo, env, timeout=400)
    assert {f: json.loads((state / f).read_text()) for f in pids} == pids

    ports = [pids["mlflow.json"]["port"], pids["mlflow.json"]["postgres_port"], pids["ssh.json"]["port"], pids["rpc.json"]["tracker_port"]]
    down = _run([str(BIN / "tensorcost"), "services", "down"], repo, env)
    assert "stopped: rpc, mlflow, ssh" in down.stdout
    assert not any(port_open(p) for p in ports) and not (state / "env.sh").exists()
    gone = subprocess.run([str(BIN / "tensorcost"), "services", "status"], cwd=repo, env=env, capture_output=True, text=True)
    assert gone.returncode == 1 and "nothing is running" in gone.stdout
