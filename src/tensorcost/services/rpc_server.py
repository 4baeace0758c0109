"""A TVM RPC server that also says which machine it is: `python -m tensorcost.services.rpc_server`.

TVM's own server (`python -m tvm.exec.rpc_server`) measures fine, but a driver cannot ask it what
hardware it runs on, so records measured through it would be labelled with the driver's platform.
This launcher runs TVM's server code unchanged (`tvm.rpc.Server`, the same options) and adds one
global function through TVM's documented hook, `server_init_callback`: it runs in the server's
process before it listens, and every session process is forked from there (TVM's default), so
each session sees `tensorcost.platform_json`, the `hardware` detection of *this* machine.

    python -m tensorcost.services.rpc_server --tracker 10.0.0.1:9190 --key zen5-2c

A driver reads it with `sess.get_function("tensorcost.platform_json")()` (tensorcost.rpc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform as _platform
import signal
import socket
import sys

from tensorcost import hardware

PLATFORM_FUNC = "tensorcost.platform_json"
PROTOCOL = 1  # bumped when the document's meaning changes


def platform_doc() -> dict:
    """This machine as the driver needs it: its platform (catalog entry or a new one, derived
    exactly as `tensorcost platform` derives it) and the target ids it can run."""
    p = hardware.host_platform()
    return {
        "protocol": PROTOCOL,
        "platform": p.to_dict(),
        "in_catalog": p.id in hardware.platforms(),
        "targets": sorted(hardware.host_targets()),
        "machine": _platform.machine(),
        "hostname": socket.gethostname(),
    }


def register_functions() -> None:
    """`server_init_callback`: register the platform function in the server's process (module
    level, so TVM's PopenWorker imports it by name). Detection runs once, here: a session then
    answers without touching /proc or NVML."""
    import tvm_ffi

    doc = json.dumps(platform_doc(), sort_keys=True)
    tvm_ffi.register_global_func(PLATFORM_FUNC, lambda: doc, override=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """TVM's `tvm.exec.rpc_server` options (the proxy mode aside: a proxy hides the machine)."""
    ap = argparse.ArgumentParser(prog="python -m tensorcost.services.rpc_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="0.0.0.0", help="address the server binds to")
    ap.add_argument("--port", type=int, default=9090, help="first port tried")
    ap.add_argument("--port-end", type=int, default=None, help="end of the port range tried (default: --port + 100)")
    ap.add_argument("--tracker", required=True, help="the tracker as host:port, e.g. 10.0.0.1:9190")
    ap.add_argument("--key", required=True, help="device key; one key = one platform (e.g. the platform id, zen5-2c)")
    ap.add_argument("--custom-addr", default=None, help="address reported to the tracker (NAT, several interfaces)")
    ap.add_argument("--silent", action="store_true", help="log errors only")
    ap.add_argument("--no-fork", dest="fork", action="store_false", help="spawn sessions instead of forking (TVM's option)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    # Sessions may then run every usable core: TVM's runtime otherwise caps its pool at half the
    # cores on x86, and the driver sets each session's count to its target's (`-t<threads>`).
    os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    from tvm import rpc

    args = parse_args(argv)
    host, _, port = args.tracker.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--tracker {args.tracker!r}: expected host:port such as 127.0.0.1:9190")
    if not args.fork:
        # Spawned sessions do not inherit the callback's registration; refuse rather than serve
        # sessions that cannot say which machine they are.
        raise SystemExit("--no-fork: sessions would not see tensorcost.platform_json; use TVM's own server and a key named after the platform")
    server = rpc.Server(args.host, args.port, args.port_end or args.port + 100, key=args.key, tracker_addr=(host, int(port)), custom_addr=args.custom_addr,
                        silent=args.silent, server_init_callback=register_functions)
    _stop_with(server)
    print(f"tensorcost rpc_server: key {args.key} on {args.host}:{server.port}, tracker {args.tracker}", flush=True)
    server.proc.join()


def _stop_with(server) -> None:
    """SIGTERM/SIGINT stop TVM's server process and its session processes too: its listening
    thread is not a daemon, so without this it outlives the launcher."""
    def _stop(signum, _frame):
        server.terminate()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


if __name__ == "__main__":
    main()
