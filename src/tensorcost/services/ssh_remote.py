"""A DVC remote over SSH, served by a private OpenSSH daemon on loopback.

A team shares its DVC-tracked data (records, features, pruned variants, models) through one
storage folder on a machine everyone can reach by SSH. `start_ssh_remote` runs such a server on
this machine for the team stack and the tests: its own `sshd` (its own config, host key, client
key pair and pid file under the state dir, never the system's sshd or port 22) serving the folder
`<state>/dvc-remote`. `configure_dvc_remote` points a repository at it (`.dvc/config.local`: the
key's path is per machine, so it stays out of git).

Host keys: DVC's SSH filesystem (dvc-ssh over sshfs over asyncssh) has no known_hosts setting and
sshfs connects with `known_hosts=None`, i.e. it never checks the server's host key (and never
prompts). So `configure_dvc_remote` checks it once itself, against the known_hosts file written
here, before it records the remote: a teammate pointed at the wrong server fails at setup. The
same file serves `ssh`/`sftp`/`git` (`-o UserKnownHostsFile=<state>/known_hosts`).

Works as root (the server logs in only root, by key) and as an ordinary user (a high port, only
that user): no option of the config needs root.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import psutil

from ..errors import UserError
from . import LOOPBACK, ServiceUnavailable, free_port, port_open, require_program, spawn, state_dir, stop_pid, wait_for_port, write_json

INFO_FILE = "ssh.json"
STORAGE_DIR = "dvc-remote"
HOST_KEY = "ssh_host_ed25519_key"
CLIENT_KEY = "id_ed25519"
PRIVSEP_DIR = Path("/run/sshd")  # sshd running as root refuses to start without it


class SSHRemoteError(UserError):
    """The SSH remote cannot be configured or reached (one line: what and why)."""


def _sshd_config(state: Path, user: str) -> str:
    """A minimal, key-only sshd config whose every path lives in the state dir."""
    return "\n".join([
        "# written by tensorcost.services.ssh_remote: a private sshd for the team's DVC remote",
        f"ListenAddress {LOOPBACK}",
        f"HostKey {state / HOST_KEY}",
        f"PidFile {state / 'sshd.pid'}",
        f"AuthorizedKeysFile {state / 'authorized_keys'}",
        f"AllowUsers {user}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",  # the state dir may sit in a group-writable checkout
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        "",
    ])


def _keygen(keygen: str, path: Path, comment: str) -> None:
    """An ed25519 key pair without passphrase, once: a kept host key keeps teammates' known_hosts valid."""
    if path.exists():
        return
    proc = subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServiceUnavailable(f"ssh-keygen could not write {path}: {' '.join((proc.stderr or proc.stdout).split())}")


def _prepare_state(state: Path, user: str, port: int) -> Path:
    """Keys, authorized_keys, known_hosts, storage folder and sshd_config; returns the config."""
    keygen = require_program("ssh-keygen", "openssh-client")
    state.mkdir(parents=True, exist_ok=True)
    (state / STORAGE_DIR).mkdir(exist_ok=True)
    _keygen(keygen, state / HOST_KEY, "tensorcost-dvc-remote-host")
    _keygen(keygen, state / CLIENT_KEY, f"tensorcost-dvc-remote-{user}")
    (state / "authorized_keys").write_text((state / f"{CLIENT_KEY}.pub").read_text())
    host_pub = " ".join((state / f"{HOST_KEY}.pub").read_text().split()[:2])
    (state / "known_hosts").write_text(f"[{LOOPBACK}]:{port} {host_pub}\n")
    config = state / "sshd_config"
    config.write_text(_sshd_config(state, user))
    return config


def _running(info: dict) -> bool:
    """The recorded sshd is alive (same pid, still our config) and listening."""
    try:
        cmdline = " ".join(psutil.Process(int(info["pid"])).cmdline())
    except (psutil.Error, ValueError, TypeError):
        return False
    return info["config"] in cmdline and port_open(info["port"])


def _load_info(state: Path) -> dict | None:
    path = state / INFO_FILE
    return json.loads(path.read_text()) if path.exists() else None


def start_ssh_remote(state: Path | None = None, port: int | None = None) -> dict:
    """Start the private sshd (idempotent: a running one is returned as is) and return what a
    client needs: pid, port, user, keyfile, known_hosts, storage and the remote's url.

    A restart reuses the previous port when it is free, so the url teammates configured holds."""
    state = (state or state_dir()).resolve()
    previous = _load_info(state)
    if previous and _running(previous):
        if port is not None and port != previous["port"]:
            raise SSHRemoteError(f"the SSH remote of {state} already runs on port {previous['port']}, not {port}: stop it first")
        return previous
    sshd = require_program("sshd", "openssh-server", ("/usr/sbin",))
    if port is None:
        port = previous["port"] if previous and not port_open(previous["port"]) else free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name  # the login the server allows: whoever runs it
    config = _prepare_state(state, user, port)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    log = state / "sshd.log"
    # -D: stay in the foreground, so the pid we record is the daemon's; -E: log to our file.
    proc = spawn([sshd, "-D", "-f", str(config), "-p", str(port), "-E", str(log)], log)  # a config error goes to the log too
    wait_for_port(port, what="sshd", proc=proc, log=log, timeout=30)
    storage = state / STORAGE_DIR
    info = {"pid": proc.pid, "port": port, "host": LOOPBACK, "user": user, "keyfile": str(state / CLIENT_KEY),
            "known_hosts": str(state / "known_hosts"), "storage": str(storage), "config": str(config), "log": str(log),
            "url": f"ssh://{user}@{LOOPBACK}:{port}{storage}"}
    write_json(state / INFO_FILE, info)
    return info


def stop_ssh_remote(state: Path | None = None) -> bool:
    """Stop the sshd of this state dir; True if one was running. Keys and stored data are kept."""
    state = (state or state_dir()).resolve()
    info = _load_info(state)
    if info is None or not _running(info):
        return False
    return stop_pid(info["pid"])  # returns once sshd's whole session is down: its port is free


def verify_host_key(info: dict, timeout: float = 15.0) -> None:
    """Connect once with the client key, checking the server's host key against `known_hosts`
    (what DVC itself skips); a refused, unknown or changed server is a one-line error."""
    import asyncssh

    async def probe() -> None:
        async with asyncssh.connect(info["host"], port=info["port"], username=info["user"], client_keys=[info["keyfile"]],
                                    known_hosts=info["known_hosts"], config=None, agent_path=None, connect_timeout=timeout):
            pass

    try:
        asyncio.run(probe())
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SSHRemoteError(f"{info['url']}: the server's host key is not the one in {info['known_hosts']} ({exc.reason})") from None
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        raise SSHRemoteError(f"{info['url']}: cannot log in by SSH ({type(exc).__name__}: {' '.join(str(exc).split()) or 'timed out'})") from None


def _dvc(repo: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise SSHRemoteError(f"`dvc {' '.join(args)}` failed in {repo} ({proc.returncode}): {last[0]}")


def configure_dvc_remote(repo: Path, info: dict, name: str = "team", default: bool = True, verify: bool = True) -> None:
    """Make the SSH remote `name` (and, with `default`, the default remote) of `repo`, in
    `.dvc/config.local`: the url names this server and the keyfile a path on this machine, so
    neither belongs in the team's git history. The host key is checked first (`verify_host_key`)."""
    if not (Path(repo) / ".dvc").is_dir():
        raise SSHRemoteError(f"{repo} is not a DVC repository (no .dvc/): `dvc init` first")
    if verify:
        verify_host_key(info)
    _dvc(repo, "remote", "add", "--local", *(["-d"] if default else []), "-f", name, info["url"])
    _dvc(repo, "remote", "modify", "--local", name, "keyfile", info["keyfile"])
