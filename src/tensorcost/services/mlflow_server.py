"""An MLflow tracking server on a private PostgreSQL cluster, with a served artifact store.

The embedded default (`sqlite:///mlflow.db`) serves one machine; a team points every machine at
one server (`MLFLOW_TRACKING_URI=http://host:port`). The server keeps runs and the registry in
PostgreSQL and proxies artifacts (`--serve-artifacts`): clients upload and download through HTTP
(`mlflow-artifacts:/...` URIs) and never need the server's file system.

Layout under the state dir:
    postgres/data     the cluster (owned by the `postgres` user when we run as root)
    postgres/run      its unix socket (when the path is short enough for one)
    postgres.log      PostgreSQL's log;  mlflow.log  the server's log
    mlflow-artifacts  the artifact store the server serves
    mlflow.json       pids, ports, tracking URI, log paths (read by `stop`/`status`)

This is a local dev/test stack: PostgreSQL listens on 127.0.0.1 only, with `trust` auth for
loopback and its socket. Do not expose it; a shared deployment needs passwords or certificates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import LOOPBACK, ServiceUnavailable, _log_tail, alive, free_port, require_program, spawn, state_dir, stop_pid, wait_for_port, write_json

INFO_FILE = "mlflow.json"
PG_DIRS = ("/usr/lib/postgresql/*/bin",)  # Debian keeps the server programs off PATH
PG_USER = "postgres"  # the cluster's superuser (and, as root, the OS user that runs it)
DATABASE = "mlflow"
WORKERS_ENV = "TENSORCOST_MLFLOW_WORKERS"


def _paths(state: Path) -> dict[str, Path]:
    return {"pg": state / "postgres", "data": state / "postgres" / "data", "run": state / "postgres" / "run",
            "pg_log": state / "postgres.log", "log": state / "mlflow.log", "artifacts": state / "mlflow-artifacts", "info": state / INFO_FILE}


def _as_pg_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the `postgres` system user
    (created by the Debian package); otherwise as ourselves."""
    if os.geteuid() != 0:
        return []
    return [require_program("runuser", "util-linux"), "-u", PG_USER, "--"]


def _pg(program: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = require_program(program, "postgresql", PG_DIRS)
    proc = subprocess.run([*_as_pg_user(), exe, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ServiceUnavailable(f"PostgreSQL `{program} {' '.join(args[:2])}` failed with status {proc.returncode}: {tail}")
    return proc


def _own(path: Path) -> None:
    """As root, hand `path` to the postgres user and check it can reach it (every parent must be
    traversable: a 0700 home or pytest base dir is not)."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, PG_USER, PG_USER)
    probe = subprocess.run([*_as_pg_user(), "test", "-w", str(path)], capture_output=True)
    if probe.returncode != 0:
        raise ServiceUnavailable(f"the {PG_USER} user cannot write {path}: make its parent folders traversable (chmod o+x) "
                                 f"or set TENSORCOST_SERVICES_DIR to a folder it can reach")


def _init_cluster(p: dict[str, Path]) -> None:
    """A private cluster (never the system one): superuser `postgres`, trust on loopback only."""
    if (p["data"] / "PG_VERSION").exists():
        return
    for d in (p["pg"], p["run"]):
        d.mkdir(parents=True, exist_ok=True)
        _own(d)
    _pg("initdb", "-D", str(p["data"]), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--locale=C")
    # local dev/test stack: trust, but only for the socket and loopback connections
    (p["data"] / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n")


def _socket_dir(p: dict[str, Path]) -> str:
    """The socket folder inside the state dir, or none (TCP only) when its path would pass the
    107-byte limit of a unix socket name."""
    return str(p["run"]) if len(str(p["run"] / ".s.PGSQL.65535")) < 100 else ""


def _running_port(p: dict[str, Path]) -> int | None:
    """The port of this cluster's postmaster if it runs (from postmaster.pid, line 4)."""
    pidfile = p["data"] / "postmaster.pid"
    if not pidfile.exists() or _pg("pg_ctl", "status", "-D", str(p["data"]), check=False).returncode != 0:
        return None
    return int(pidfile.read_text().splitlines()[3])


def _start_postgres(p: dict[str, Path]) -> int:
    """Start the cluster on a free loopback port (or keep it running); returns the port."""
    port = _running_port(p)
    if port is not None:
        return port
    port = free_port()
    p["pg_log"].touch()
    _own(p["pg_log"])
    opts = f"-c listen_addresses={LOOPBACK} -c port={port} -c unix_socket_directories='{_socket_dir(p)}'"
    proc = _pg("pg_ctl", "start", "-w", "-t", "60", "-D", str(p["data"]), "-l", str(p["pg_log"]), "-o", opts, check=False)
    if proc.returncode != 0:
        raise ServiceUnavailable(f"PostgreSQL did not start (pg_ctl status {proc.returncode}){_log_tail(p['pg_log'])}")
    wait_for_port(port, what="PostgreSQL", log=p["pg_log"])
    return port


def _create_database(port: int) -> None:
    """`CREATE DATABASE mlflow` unless it exists (MLflow creates its tables itself)."""
    import psycopg2

    conn = psycopg2.connect(host=LOOPBACK, port=port, user=PG_USER, dbname="postgres", connect_timeout=10)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        conn.close()


def _server_env() -> dict[str, str]:
    """The server's environment: this venv first on PATH (uvicorn is spawned by name), and
    MLflow's job runner off unless asked for (7 huey processes serve GenAI jobs we never submit)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def _health(port: int, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """The port opens before the app is ready (uvicorn workers import MLflow): poll /health."""
    wait_for_port(port, what="mlflow server", proc=proc, log=log, timeout=timeout)
    deadline = time.monotonic() + timeout
    while not _health(port):
        if proc.poll() is not None:
            raise ServiceUnavailable(f"mlflow server exited with status {proc.returncode}{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"mlflow server on {LOOPBACK}:{port} did not answer /health within {timeout:.0f} s{_log_tail(log)}")
        time.sleep(0.3)


def mlflow_server_status(state: Path | None = None) -> dict | None:
    """The server's info (mlflow.json) with `healthy`, or None when no state file exists."""
    info_file = _paths(state or state_dir())["info"]
    if not info_file.exists():
        return None
    info = json.loads(info_file.read_text())
    info["healthy"] = alive(info["mlflow_pid"]) and _health(info["port"])
    return info


def start_mlflow_server(state: Path | None = None, port: int | None = None) -> dict:
    """Start (or find running) PostgreSQL + `mlflow server`; returns what mlflow.json records.

    Idempotent: a server that mlflow.json names and that answers /health is returned as is."""
    state = (state or state_dir()).resolve()
    p = _paths(state)
    running = mlflow_server_status(state)
    if running and running["healthy"]:
        return running
    if running and alive(running["mlflow_pid"]):  # there but not healthy: replace it
        stop_pid(running["mlflow_pid"])
    state.mkdir(parents=True, exist_ok=True)
    _init_cluster(p)
    pg_port = _start_postgres(p)
    _create_database(pg_port)
    p["artifacts"].mkdir(exist_ok=True)
    port = port or free_port()
    backend = f"postgresql+psycopg2://{PG_USER}@{LOOPBACK}:{pg_port}/{DATABASE}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--serve-artifacts",
           "--artifacts-destination", str(p["artifacts"]), "--host", LOOPBACK, "--port", str(port),
           "--workers", os.environ.get(WORKERS_ENV, "2")]  # uvicorn's default 4 workers is a lot of memory for a small team
    proc = spawn(cmd, p["log"], env=_server_env())
    try:
        _wait_healthy(port, proc, p["log"])
    except BaseException:
        stop_pid(proc.pid)
        raise
    info = {"tracking_uri": f"http://{LOOPBACK}:{port}", "port": port, "mlflow_pid": proc.pid, "postgres_port": pg_port,
            "postgres_data": str(p["data"]), "backend_store_uri": backend, "artifacts_destination": str(p["artifacts"]),
            "logs": {"mlflow": str(p["log"]), "postgres": str(p["pg_log"])}}
    write_json(p["info"], info)
    return {**info, "healthy": True}


def stop_mlflow_server(state: Path | None = None) -> bool:
    """Stop mlflow, then PostgreSQL (`pg_ctl stop -m fast`); data is kept. True if anything ran."""
    state = (state or state_dir()).resolve()
    p = _paths(state)
    stopped = False
    if p["info"].exists():
        info = json.loads(p["info"].read_text())
        if alive(info["mlflow_pid"]):
            stop_pid(info["mlflow_pid"])
            stopped = True
        p["info"].unlink()
    if _running_port(p) is not None:
        _pg("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(p["data"]))
        stopped = True
    return stopped
