"""`make services`: the team stack on this machine, with the ports printed and an env file.

    tensorcost services up      # MLflow on PostgreSQL, an SSH DVC remote, an RPC tracker + server
    source .tensorcost/services/env.sh && make run   # the pipeline against the stack
    tensorcost services down

Each service keeps its own state file (`<state>/<service>.json`: pids, ports, logs) so `down`
and `status` work from any later process. `env.sh` exports MLFLOW_TRACKING_URI (registry and
tune stage read it) and TENSORCOST_RPC_TRACKER / TENSORCOST_RPC_KEY (collect measures through
the tracker when set); the SSH remote is configured as this repository's `team` DVC remote in
`.dvc/config.local` (not the default remote: `dvc push -r team`).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..hardware import host_platform
from ..rpc import RpcConfig, servers_registered
from . import LOOPBACK, ServiceUnavailable, free_port, port_open, spawn, state_dir, stop_pid, wait_for_port, write_json
from .mlflow_server import mlflow_server_status, start_mlflow_server, stop_mlflow_server
from .ssh_remote import INFO_FILE as SSH_FILE
from .ssh_remote import configure_dvc_remote, start_ssh_remote, stop_ssh_remote

RPC_FILE = "rpc.json"


def start_rpc(state: Path, key: str, port: int | None = None) -> dict:
    """A TVM RPC tracker (TVM's own module) and one server of this machine under `key`."""
    info_file = state / RPC_FILE
    if info_file.exists():
        info = json.loads(info_file.read_text())
        if port_open(info["tracker_port"]):
            return info
    state.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    tracker_log, server_log = state / "rpc-tracker.log", state / "rpc-server.log"
    tracker = spawn([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", LOOPBACK, "--port", str(port), "--port-end", str(port + 1)], tracker_log)
    wait_for_port(port, what="TVM RPC tracker", proc=tracker, log=tracker_log)
    server = spawn([sys.executable, "-m", "tensorcost.services.rpc_server", "--host", LOOPBACK, "--port", str(free_port()),
                    "--tracker", f"{LOOPBACK}:{port}", "--key", key], server_log)
    info = {"tracker": f"{LOOPBACK}:{port}", "tracker_port": port, "key": key, "pids": [server.pid, tracker.pid],
            "logs": [str(tracker_log), str(server_log)]}
    write_json(info_file, info)  # before waiting: `down` can stop a server that never registered
    _wait_registered(RpcConfig(tracker=info["tracker"], key=key), server, server_log)
    return info


def _wait_registered(cfg, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Until the tracker lists the server under its key (the server imports TVM first: seconds)."""
    deadline = time.monotonic() + timeout
    while servers_registered(cfg) == 0:
        if server.poll() is not None or time.monotonic() > deadline:
            raise ServiceUnavailable(f"the RPC server of key {cfg.key} did not register with the tracker {cfg.tracker} (log {log})")
        time.sleep(0.5)


def stop_rpc(state: Path) -> bool:
    info_file = state / RPC_FILE
    if not info_file.exists():
        return False
    for pid in json.loads(info_file.read_text())["pids"]:
        stop_pid(pid)
    info_file.unlink()
    return True


def env_lines(mlflow: dict | None, rpc: dict | None) -> list[str]:
    lines = []
    if mlflow:
        lines.append(f"export MLFLOW_TRACKING_URI={shlex.quote(mlflow['tracking_uri'])}")
    if rpc:
        lines += [f"export TENSORCOST_RPC_TRACKER={shlex.quote(rpc['tracker'])}", f"export TENSORCOST_RPC_KEY={shlex.quote(rpc['key'])}"]
    return lines


def up(state: Path | None = None, mlflow: bool = True, ssh: bool = True, rpc: bool = True, repo: Path | None = None, log=print) -> dict:
    """Start what is asked for (idempotent) and write `<state>/env.sh`; returns what runs where."""
    state = state or state_dir()
    out: dict = {}
    if mlflow:
        out["mlflow"] = start_mlflow_server(state)
        log(f"mlflow    {out['mlflow']['tracking_uri']}  (PostgreSQL on {LOOPBACK}:{out['mlflow']['postgres_port']})")
    if ssh:
        out["ssh"] = start_ssh_remote(state)
        log(f"dvc ssh   {out['ssh']['url']}")
        if repo is not None and (repo / ".dvc").is_dir():
            configure_dvc_remote(repo, out["ssh"], name="team", default=False)
            log("          configured as this repository's DVC remote `team` (.dvc/config.local): dvc push -r team")
    if rpc:
        out["rpc"] = start_rpc(state, key=host_platform().id)
        log(f"tvm rpc   tracker {out['rpc']['tracker']}, one server of this machine under key {out['rpc']['key']}")
    env = state / "env.sh"
    env.write_text("# written by `tensorcost services up`; `source` it to run the pipeline against the stack\n"
                   + "\n".join(env_lines(out.get("mlflow"), out.get("rpc"))) + "\n")
    log(f"env       source {env}")
    return out


def down(state: Path | None = None, log=print) -> list[str]:
    """Stop every service this state dir knows of; data (PostgreSQL, artifacts, remote) is kept."""
    state = state or state_dir()
    stopped = []
    for name, stop in (("rpc", stop_rpc), ("mlflow", stop_mlflow_server), ("ssh", stop_ssh_remote)):
        if stop(state):
            stopped.append(name)
    log("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    (state / "env.sh").unlink(missing_ok=True)
    return stopped


def status(state: Path | None = None) -> dict[str, str]:
    """{service: where it answers} for the parts that run now."""
    state = state or state_dir()
    out = {}
    mlflow = mlflow_server_status(state)
    if mlflow and mlflow.get("healthy"):
        out["mlflow"] = mlflow["tracking_uri"]
    ssh_file = state / SSH_FILE
    if ssh_file.exists():
        info = json.loads(ssh_file.read_text())
        if port_open(info["port"]):
            out["dvc-ssh"] = info["url"]
    rpc_file = state / RPC_FILE
    if rpc_file.exists():
        info = json.loads(rpc_file.read_text())
        if port_open(info["tracker_port"]):
            out["rpc"] = f"tracker {info['tracker']}, {servers_registered(RpcConfig(tracker=info['tracker'], key=info['key']))} server(s) under key {info['key']}"
    return out
