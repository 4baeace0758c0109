"""Measuring through TVM RPC: params, the platform behind a device key, MetaSchedule's RPCRunner.

`measure.rpc` names a tracker and a device key; without it measurement stays local (LocalRunner).
Builds stay on the driver (LLVM cross-compiles for the target's `mcpu`); only runs go to the
servers. Three things the stock runner does not do, and a dataset needs:

- **Which machine measured.** A record is labelled with a target `<platform>.<variant>`; the
  platform is the one the servers report (`tensorcost.services.rpc_server` registers
  `tensorcost.platform_json`), never the driver's. One key = one platform: a key whose servers
  report different platforms is refused. TVM's stock server cannot report: its key must then be
  a catalog platform id, and a warning says the platform was taken on trust.
- **Infrastructure failures are not program failures.** A server that dies, or no server for
  the key, fails runs with a message carrying `UNAVAILABLE_MARK`; collect writes those as error
  records with their own `error_no` (RUNNER_UNAVAILABLE) that a resumed run measures again.
- **No unbounded waits.** Connecting to the tracker, waiting for a free server and a session are
  each bounded (`connect_timeout_s`, `request_timeout_s`, `session_timeout_s`).

The worker functions (`create_session`, `upload_module`, ...) run in RPCRunner's worker
processes: module level, importing nothing heavy at import time.
"""

from __future__ import annotations

import functools
import json
import logging
import platform as _platform
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from . import hardware
from .errors import UserError
from .hardware.detect import catalog_platform
from .params import RpcConfig

log = logging.getLogger(__name__)

UNAVAILABLE_MARK = "[tensorcost: rpc server unavailable]"
PLATFORM_FUNC = "tensorcost.platform_json"  # registered by tensorcost.services.rpc_server
TRACKER_MAGIC = 0x2F271  # tvm.rpc.base.RPC_TRACKER_MAGIC (kept here: checking a tracker imports no TVM)


class RpcUnavailable(UserError):
    """The tracker or the servers of a key cannot be reached (a user fixes it by starting them)."""


# -- the tracker's protocol (length-prefixed JSON after a magic handshake) ------------------------

def _send(sock: socket.socket, data: Any) -> None:
    body = json.dumps(data).encode()
    sock.sendall(struct.pack("<i", len(body)) + body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        buf += chunk
    return buf


def _recv(sock: socket.socket) -> Any:
    (size,) = struct.unpack("<i", _recv_exact(sock, 4))
    return json.loads(_recv_exact(sock, size).decode())


def tracker_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A connected, handshaken tracker socket; `RpcUnavailable` (one line) within `timeout`."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(timeout)
        sock.sendall(struct.pack("<i", TRACKER_MAGIC))
        (magic,) = struct.unpack("<i", _recv_exact(sock, 4))
    except (OSError, ConnectionError) as exc:
        reason = "no answer" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc) or type(exc).__name__)
        raise RpcUnavailable(f"the RPC tracker {where} is unreachable ({reason} within {timeout:g} s): start it with "
                             f"`python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port {port}` or fix measure.rpc.tracker") from None
    if magic != TRACKER_MAGIC:
        sock.close()
        raise RpcUnavailable(f"{where} answers but is not a TVM RPC tracker: fix measure.rpc.tracker")
    return sock


def tracker_summary(host: str, port: int, timeout: float) -> dict:
    """The tracker's summary: `server_info` (every live server, busy or free) and `queue_info`."""
    with tracker_socket(host, port, timeout) as sock:
        _send(sock, [6])  # TrackerCode.SUMMARY
        code, summary = _recv(sock)
    return summary


def servers_by_key(summary: dict) -> dict[str, int]:
    """Live servers per key ("server:<key>" in the tracker's server list)."""
    out: dict[str, int] = {}
    for item in summary.get("server_info", []):
        key = str(item.get("key", "")).partition(":")[2]
        out[key] = out.get(key, 0) + 1
    return out


def servers_registered(cfg: RpcConfig) -> int:
    """Servers registered under the key now (0 when the tracker itself is gone)."""
    try:
        return servers_by_key(tracker_summary(cfg.host, cfg.port, cfg.connect_timeout_s)).get(cfg.key, 0)
    except RpcUnavailable:
        return 0


def connect_session(host: str, port: int, key: str, priority: int, session_timeout: float, wait_s: float, connect_timeout: float):
    """An RPC session with a server of `key`, waiting at most `wait_s` for a free one. Fails at once
    when no server is registered under the key (TVM's own request would wait forever), and asks
    again when the server handed out has just died (the tracker learns it a moment later)."""
    from tvm import rpc

    deadline = time.monotonic() + wait_s
    last: Exception | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{UNAVAILABLE_MARK} no server under key {key!r} was free within {wait_s:g} s" + (f" (last error: {last})" if last else ""))
        try:
            sock = tracker_socket(host, port, connect_timeout)
        except RpcUnavailable as exc:
            raise RuntimeError(f"{UNAVAILABLE_MARK} {exc}") from None
        with sock:
            _send(sock, [6])
            if servers_by_key(_recv(sock)[1]).get(key, 0) == 0:
                raise RuntimeError(f"{UNAVAILABLE_MARK} no server is registered under key {key!r} at the tracker {host}:{port}")
            sock.settimeout(left)
            try:
                _send(sock, [4, key, "", priority])  # TrackerCode.REQUEST
                code, (url, server_port, matchkey) = _recv(sock)
            except (socket.timeout, TimeoutError):
                continue  # the deadline check above ends it
        try:
            return rpc.connect(url, server_port, matchkey, session_timeout)
        except Exception as exc:  # noqa: BLE001  (refused: that server is gone; ask for another)
            last = exc
            time.sleep(0.2)


# -- RPCRunner's worker functions ---------------------------------------------------------------

def create_session(rpc_config, *, wait_s: float, connect_timeout_s: float):
    """RPCRunner `f_create_session` with bounded waits; every failure is the infrastructure's."""
    try:
        return connect_session(rpc_config.tracker_host, int(rpc_config.tracker_port), rpc_config.tracker_key, rpc_config.session_priority,
                               rpc_config.session_timeout_sec, wait_s, connect_timeout_s)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc)
        raise RuntimeError(msg if UNAVAILABLE_MARK in msg else f"{UNAVAILABLE_MARK} {msg}") from None


def _alive(session) -> bool:
    """Whether the session still answers (a trivial remote call)."""
    try:
        session.get_function("runtime.NumThreads")()
        return True
    except Exception:  # noqa: BLE001
        return False


def _guarded(step: str, session, fn, *args):
    """Run one step; an error after which the session no longer answers is the server's loss,
    not the program's (the server's own session timeout stays a run timeout)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc)
        if "RPCSessionTimeoutError" not in msg and not _alive(session):
            raise RuntimeError(f"{UNAVAILABLE_MARK} the session ended during {step}: {msg.strip().splitlines()[-1] if msg.strip() else type(exc).__name__}") from None
        raise


def upload_module(session, local_path: str, remote_path: str):
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_upload_module

    return _guarded("upload", session, default_upload_module, session, local_path, remote_path)


def alloc_argument(session, device, args_info, alloc_repeat: int):
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_alloc_argument

    return _guarded("argument allocation", session, default_alloc_argument, session, device, args_info, alloc_repeat)


def run_evaluator(session, rt_mod, device, evaluator_config, repeated_args, *, threads: int = 0):
    """Time the program with the target's thread count set in the session (the server's runtime
    would otherwise use its own default: half the cores on x86)."""
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_run_evaluator

    if threads:
        _guarded("thread configuration", session, lambda: session.get_function("runtime.config_threadpool")(1, threads))
        got = int(session.get_function("runtime.NumThreads")())
        if got != threads:  # a record on fewer threads than its target says would be mislabelled
            raise RuntimeError(f"{UNAVAILABLE_MARK} the server runs {got} thread(s), the target {threads}: start it with TVM_NUM_THREADS={threads} or more "
                               "(tensorcost.services.rpc_server sets every usable core)")
    return _guarded("run", session, default_run_evaluator, session, rt_mod, device, evaluator_config, repeated_args)


def cleanup(session, remote_path: str | None) -> None:
    """TVM's cleanup, silent when the session is gone (it would hide the real error otherwise)."""
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_cleanup

    try:
        default_cleanup(session, remote_path)
    except Exception:  # noqa: BLE001
        pass


def is_unavailable(error_msg: str | None) -> bool:
    return bool(error_msg) and UNAVAILABLE_MARK in str(error_msg)


def make_runner(cfg: RpcConfig, evaluator_config, workers: int, threads: int):
    """MetaSchedule's RPCRunner on the key's servers, with the bounded, classifying steps above."""
    import tvm.s_tir.meta_schedule as ms

    return ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(tracker_host=cfg.host, tracker_port=cfg.port, tracker_key=cfg.key, session_priority=cfg.priority,
                                       session_timeout_sec=cfg.session_timeout_s),
        evaluator_config=evaluator_config,
        f_create_session=functools.partial(create_session, wait_s=cfg.request_timeout_s, connect_timeout_s=cfg.connect_timeout_s),
        f_upload_module=upload_module, f_alloc_argument=alloc_argument,
        f_run_evaluator=functools.partial(run_evaluator, threads=threads), f_cleanup=cleanup,
        max_workers=max(1, workers),
    )


# -- the platform behind a key ------------------------------------------------------------------

@dataclass(frozen=True)
class RemotePlatform:
    platform: Any  # hardware.Platform, as this driver's catalog files it
    targets: tuple[str, ...] | None  # variant ids the servers can run (None: a stock server, unknown)
    servers: int  # servers that answered
    reported: bool  # False: taken from the key (TVM's stock server)
    machine: str


def _doc_of(session, cfg: RpcConfig) -> dict:
    """What one server says about its machine; a stock server's platform from the key."""
    try:
        func = session.get_function(PLATFORM_FUNC)
    except Exception:  # noqa: BLE001  (AttributeError: the server has no such function)
        func = None
    if func is not None:
        return json.loads(str(func()))
    known = hardware.platforms()
    if cfg.key not in known:
        raise UserError(f"a server under key {cfg.key!r} is TVM's stock server, which cannot report its machine, and {cfg.key!r} is not a catalog "
                        f"platform id: start it with `python -m tensorcost.services.rpc_server --tracker {cfg.tracker} --key {cfg.key}`, "
                        f"or name the key after its platform ({', '.join(sorted(p for p, v in known.items() if v.kind == 'cpu'))})")
    log.warning("UNVERIFIED PLATFORM: a server under key %r is TVM's stock server; its records are labelled %r because the key says so. "
                "Start servers with `python -m tensorcost.services.rpc_server` to have them report their machine.", cfg.key, cfg.key)
    return {"platform": known[cfg.key].to_dict(), "targets": None, "machine": _platform.machine(), "stock": True}


def query_servers(cfg: RpcConfig) -> list[dict]:
    """Every registered server of the key describes its machine: sessions are held open while
    the next is requested, so the tracker hands out each server once."""
    by_key = servers_by_key(tracker_summary(cfg.host, cfg.port, cfg.connect_timeout_s))
    n = by_key.get(cfg.key, 0)
    if n == 0:
        others = ", ".join(sorted(k for k in by_key if k)) or "none"
        raise RpcUnavailable(f"no RPC server is registered under key {cfg.key!r} at {cfg.tracker} (keys there: {others}): start one with "
                             f"`python -m tensorcost.services.rpc_server --tracker {cfg.tracker} --key {cfg.key}`")
    sessions, docs = [], []
    try:
        for i in range(n):
            try:
                sess = connect_session(cfg.host, cfg.port, cfg.key, cfg.priority, cfg.session_timeout_s,
                                       cfg.request_timeout_s if i == 0 else min(cfg.request_timeout_s, 10.0), cfg.connect_timeout_s)
            except RuntimeError as exc:
                if not sessions:
                    raise RpcUnavailable(str(exc).replace(UNAVAILABLE_MARK, "").strip() + ": is another run holding every server?") from None
                log.warning("key %s: only %d of %d servers were free to describe their machine", cfg.key, len(sessions), n)
                break
            sessions.append(sess)
            docs.append(_doc_of(sess, cfg))
    finally:
        sessions.clear()  # dropping the sessions ends them; the servers register again
    return docs


def remote_platform(cfg: RpcConfig) -> RemotePlatform:
    """The one platform behind the key (refused when its servers are different machines)."""
    docs = query_servers(cfg)
    found = {}
    for d in docs:
        p = hardware.Platform.from_dict(d["platform"])
        found[p.id] = catalog_platform(p) if p.kind == "cpu" else p
    if len(found) > 1:
        raise UserError(f"the servers under key {cfg.key!r} are different machines ({', '.join(sorted(found))}): one key = one platform; "
                        "start each kind of machine under its own key")
    machines = {d.get("machine", "") for d in docs}
    targets = None
    if all(d.get("targets") is not None for d in docs):
        sets = [{t.partition(".")[2] for t in d["targets"]} for d in docs]
        targets = tuple(sorted(set.intersection(*sets)))
    return RemotePlatform(platform=next(iter(found.values())), targets=targets, servers=len(docs),
                          reported=not any(d.get("stock") for d in docs), machine=machines.pop() if len(machines) == 1 else "")


def remote_target(cfg: RpcConfig, target_id: str, info: RemotePlatform | None = None):
    """The target records measured through the key are labelled with: `remote.<variant>` (the
    servers' platform) or an explicit `<platform>.<variant>` that must be the servers' one."""
    info = info or remote_platform(cfg)
    p = info.platform
    platform_id, _, variant_id = target_id.partition(".")
    if not variant_id:
        raise UserError(f"target {target_id!r}: expected remote.<variant> or {p.id}.<variant> (e.g. remote.avx2-t1)")
    if platform_id not in ("remote", p.id):
        raise UserError(f"target {target_id!r} names platform {platform_id!r}, but the servers under key {cfg.key!r} are {p.id} ({p.model_name}): "
                        f"measure remote.{variant_id} or {p.id}.{variant_id}")
    target = hardware.make_target(p, variant_id)
    if info.targets is not None and variant_id not in info.targets:
        raise UserError(f"the servers under key {cfg.key!r} ({p.id}) cannot run variant {variant_id!r}; they can run: {', '.join(info.targets) or 'none'}")
    if target.kind == "cpu" and info.machine and info.machine != _platform.machine():
        raise UserError(f"the servers under key {cfg.key!r} are {info.machine} machines; this driver builds {_platform.machine()} code: "
                        "run the driver on the servers' architecture")
    return target


def check_servers(cfg: RpcConfig, hw) -> RemotePlatform:
    """Before measuring `hw` through the key: the servers' platform must be `hw`'s (records are
    labelled with it). Returns what the servers reported."""
    info = remote_platform(cfg)
    if info.platform.id != hw.platform.id:
        raise UserError(f"records would be labelled {hw.id}, but the servers under key {cfg.key!r} are {info.platform.id} "
                        f"({info.platform.model_name}): measure {info.platform.id}.{hw.variant.id} (or remote.{hw.variant.id})")
    remote_target(cfg, hw.id, info)  # the variant runs there
    return info


def resolve_remote(cfg: RpcConfig, target_id: str, preferred_variants: list[str] | None = None):
    """`resolve_target` for the machine behind the key: `auto` (the first preferred variant its
    servers run), `remote.<variant>`, or the servers' own `<platform>.<variant>`."""
    info = remote_platform(cfg)
    if target_id != "auto":
        return remote_target(cfg, target_id, info)
    for v in preferred_variants or []:
        if info.targets is None or v in info.targets:
            return remote_target(cfg, f"remote.{v}", info)
    raise UserError(f"the servers under key {cfg.key!r} ({info.platform.id}) run none of the preferred variants {preferred_variants}; "
                    f"they run: {', '.join(info.targets or ())}")
