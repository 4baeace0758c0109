"""The team stack on one machine: a PostgreSQL-backed MLflow server, an SSH-served DVC remote and
a TVM RPC tracker with a local server (`make services`). The embedded defaults (sqlite registry,
local folder remote, LocalRunner) stay the default; these are what a team shares.

This module holds what every service needs: where its state lives, free loopback ports, waiting
for a port, and finding (or, as root on Debian, installing) the system programs a service runs.
A machine without them gets `ServiceUnavailable`: one line naming the missing program and the
Debian package that provides it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

from ..errors import UserError
from ..safeio import write_text

STATE_DIR_ENV = "TENSORCOST_SERVICES_DIR"
LOOPBACK = "127.0.0.1"


class ServiceUnavailable(UserError, RuntimeError):
    """A system program a service needs is missing and cannot be installed here."""


def state_dir() -> Path:
    """Where `make services` keeps data, logs, keys and the ports file (`.tensorcost/services`
    under the working directory unless TENSORCOST_SERVICES_DIR says otherwise)."""
    return Path(os.environ.get(STATE_DIR_ENV, ".tensorcost/services")).resolve()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 60.0, what: str = "service", proc: subprocess.Popen | None = None,
                  log: Path | None = None) -> None:
    """Block until something accepts connections on host:port; a process that exits first, or a
    timeout, is an error that quotes the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with status {proc.returncode} before listening on {host}:{port}{_log_tail(log)}")
        time.sleep(0.2)
    raise ServiceUnavailable(f"{what} did not listen on {host}:{port} within {timeout:.0f} s{_log_tail(log)}")


def _log_tail(log: Path | None, lines: int = 5) -> str:
    if log is None or not log.exists():
        return ""
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    return f" (log {log}: {tail})"


def find_program(name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """The path of `name` on PATH or in `extra_dirs` (Debian keeps PostgreSQL's server programs in
    /usr/lib/postgresql/<major>/bin, off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        for candidate in sorted(Path("/").glob(d.lstrip("/")), reverse=True):
            if (candidate / name).is_file() and os.access(candidate / name, os.X_OK):
                return str(candidate / name)
    return None


def can_install() -> bool:
    """apt-get as root (a container, CI): the project may install system packages itself."""
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


def require_program(name: str, package: str, extra_dirs: tuple[str, ...] = (), install: bool = True) -> str:
    """`name`'s path; if it is missing and this is a root Debian machine, `apt-get install
    package` first. Otherwise `ServiceUnavailable` with one line saying what to install."""
    found = find_program(name, extra_dirs)
    if found:
        return found
    if install and can_install():
        proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if proc.returncode != 0:  # a stale package index is the usual cause; refresh once
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
            proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], capture_output=True, text=True,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = find_program(name, extra_dirs)
        if found:
            return found
        raise ServiceUnavailable(f"{name} is missing and `apt-get install {package}` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    raise ServiceUnavailable(f"{name} is missing: install the Debian/Ubuntu package `{package}` (or its equivalent) to use this service")


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# Servers this process started: stopping one also reaps it (a zombie child would otherwise keep
# its pid "alive" until this process exits).
_STARTED: dict[int, subprocess.Popen] = {}


def spawn(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """A daemon in its own session (so stopping it stops its workers too), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _STARTED[proc.pid] = proc
    return proc


def alive(pid: int) -> bool:
    """Running, and not a zombie (a child that exited but was not reaped yet)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone, or not ours to see
        return False


def stop_pid(pid: int, timeout: float = 15.0) -> bool:
    """Stop a daemon and everything in its session (uvicorn workers, TVM's tracker and server
    subprocesses): SIGTERM, then SIGKILL after `timeout`. True if it was running."""
    if not alive(pid):
        if pid in _STARTED:
            _STARTED.pop(pid).poll()  # reap it
        return False

    try:
        leader = os.getpgid(pid) == pid  # started by `spawn`: signal its whole session
    except ProcessLookupError:
        leader = False

    def signal_all(sig: int) -> None:
        try:
            os.killpg(pid, sig) if leader else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    proc = _STARTED.pop(pid, None)
    while time.monotonic() < deadline:
        if (proc is not None and proc.poll() is not None) or not alive(pid):
            break
        time.sleep(0.1)
    else:
        signal_all(signal.SIGKILL)
    if leader:
        signal_all(signal.SIGKILL)  # a worker that outlived its leader
    if proc is not None:
        proc.wait()
    if leader:
        # SIGKILL is asynchronous: wait until no member of the session runs any more, so a caller
        # that restarts on the same port or state dir finds it free. An orphan the kernel has
        # killed but nobody has reaped yet is a zombie: it holds no socket and is not waited for.
        deadline = time.monotonic() + 5.0
        while _session_members(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return True


def _session_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and alive(proc.pid):
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members
