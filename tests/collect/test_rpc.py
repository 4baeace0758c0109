"""Measuring through TVM RPC, for real: TVM's tracker and RPC servers on loopback as separate
processes (TVM's own commands and our launcher), real builds, real runs.

Two servers stand for two machines: `box-a` is this host, `box-b` another platform: a Zen 3, or
a Zen 5 when this host is a Zen 3 (the launcher reads a cpuinfo fixture through
TENSORCOST_CPUINFO, as the hardware tests simulate hosts), so a record labelled with that
platform can only have taken it from the server, never from the driver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tensorcost import collect, dataset, hardware, rpc
from tensorcost import records as rec
from tensorcost.errors import UserError
from tensorcost.services import free_port, wait_for_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CPUINFO = REPO / "tests/data/cpuinfo"


def _other_machine() -> tuple[Path, str]:
    """A cpuinfo fixture of a platform that is not this host's, and that platform's id."""
    host = hardware.host_platform().id
    for name, platform in (("zen3-epyc-7763.txt", "zen3-2c"), ("zen5-epyc-kvm.txt", "zen5-2c")):
        if platform != host:
            return CPUINFO / name, platform
    raise AssertionError("unreachable: the host is one platform")


OTHER, OTHER_ID = _other_machine()
PY = sys.executable


class Cluster:
    """A tracker and the servers started on it; every process is a session leader, so killing
    its group takes TVM's server worker and session processes with it (a machine going away)."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        log = logs / "tracker.log"
        self.procs["tracker"] = subprocess.Popen([PY, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(self.port), "--port-end", str(self.port + 1)],
                                                 stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout=90, what="rpc tracker", proc=self.procs["tracker"], log=log)

    @property
    def tracker(self) -> str:
        return f"127.0.0.1:{self.port}"

    def server(self, name: str, key: str, cpuinfo: Path | None = None, stock: bool = False) -> subprocess.Popen:
        env = {**os.environ, "PATH": f"{Path(PY).parent}:{os.environ.get('PATH', '')}"}
        env.pop("TENSORCOST_CPUINFO", None)
        if cpuinfo is not None:
            env["TENSORCOST_CPUINFO"] = str(cpuinfo)
        module = "tvm.exec.rpc_server" if stock else "tensorcost.services.rpc_server"
        port = free_port()
        cmd = [PY, "-m", module, "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1), "--tracker", self.tracker, "--key", key]
        proc = subprocess.Popen(cmd, stdout=(self.logs / f"{name}.log").open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def wait_registered(self, key: str, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rpc.servers_by_key(rpc.tracker_summary("127.0.0.1", self.port, 5)).get(key, 0) >= n:
                return
            time.sleep(0.3)
        raise AssertionError(f"{n} server(s) of {key} did not register; logs: {sorted(p.name for p in self.logs.iterdir())}")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def close(self) -> None:
        for name in [n for n in self.procs if n != "tracker"] + ["tracker"]:
            if name in self.procs:
                self.kill(name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("rpc-logs"))
    try:
        c.server("box-a", "box-a")
        c.server("box-b", "box-b", cpuinfo=OTHER)
        c.wait_registered("box-a", 1)
        c.wait_registered("box-b", 1)
        yield c
    finally:
        c.close()


def _sample(n_tasks: int, per_task: int):
    tasks, programs, _ = collect.load_task_set(dataset.programs_dir("cpu"))
    chosen = dataset.sample_programs(programs, n_tasks, per_task, 0)
    return [t for t in tasks if t.task_id in chosen], chosen


def _cfg(cluster: Cluster, key: str, **kw) -> collect.MeasureConfig:
    rpc_cfg = {"tracker": cluster.tracker, "key": key, "session_timeout_s": 30, "request_timeout_s": 20.0, "connect_timeout_s": 3.0}
    return collect.MeasureConfig(number=1, repeat=1, min_repeat_ms=0, run_batch=kw.pop("run_batch", 4), builder_workers=1, rpc=rpc_cfg, **kw)


def _expected_ids(hw, chosen) -> set[str]:
    return {rec.record_id(hw.id, t, rec.program_id(tr)) for t, trs in chosen.items() for tr in trs}


def test_records_carry_the_platform_each_server_reports(cluster, tmp_path):
    tasks, chosen = _sample(2, 2)
    # box-a on 2 threads: the session's thread pool is set to the target's (and checked)
    for key, platform, variant in (("box-a", hardware.host_platform().id, "avx2-t2"), ("box-b", OTHER_ID, "avx2-t1")):
        cfg = _cfg(cluster, key)
        hw = rpc.resolve_remote(cfg.rpc, f"remote.{variant}")
        assert hw.id == f"{platform}.{variant}"
        summary = collect.collect_target(tasks, chosen, hw, tmp_path / key, cfg)
        table = rec.read_records(tmp_path / key / "parts")
        assert summary["records"] == table.num_rows == 4
        assert set(table.column("target").to_pylist()) == {hw.id}
        assert table.column("error_no").to_pylist() == [0] * 4, table.column("error_msg").to_pylist()
        assert all(x > 0 for x in table.column("latency_s").to_pylist())
        assert set(table.column("record_id").to_pylist()) == _expected_ids(hw, chosen)
    # Labelling the other machine's runs as this host is refused, in one line.
    with pytest.raises(UserError, match=rf"servers under key 'box-b' are {OTHER_ID}") as err:
        collect.measure_task_set(tasks, chosen, hardware.resolve_target(f"{hardware.host_platform().id}.avx2-t1"), tmp_path / "wrong", _cfg(cluster, "box-b"))
    assert "\n" not in str(err.value)


def test_a_server_killed_mid_run_loses_and_duplicates_nothing_and_the_run_resumes(cluster, tmp_path):
    tasks, chosen = _sample(2, 4)
    cluster.server("box-c", "box-c")
    cluster.wait_registered("box-c", 1)
    cfg = _cfg(cluster, "box-c", run_batch=2)
    hw = rpc.resolve_remote(cfg.rpc, "remote.avx2-t1")
    expected = _expected_ids(hw, chosen)
    assert len(expected) == 8
    out = tmp_path / "out"

    def kill_after_first_part() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list((out / "parts").glob("*.parquet")):
            time.sleep(0.05)
        cluster.kill("box-c")

    killer = threading.Thread(target=kill_after_first_part)
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(collect.RunIncomplete, match=r"could not be run \(no server of key 'box-c'") as err:
        collect.collect_target(tasks, chosen, hw, out, cfg)
    killer.join()
    assert "\n" not in str(err.value)
    assert time.monotonic() - t0 < 150, "a lost server must not stall the run"

    first = rec.read_records(out / "parts")
    ids = first.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == expected, "every program ends as exactly one record"
    codes = first.column("error_no").to_pylist()
    assert set(codes) <= {0, collect.RUNNER_UNAVAILABLE}
    unavailable = {r for r, c in zip(ids, codes) if c == collect.RUNNER_UNAVAILABLE}
    measured = {r: m for r, c, m in zip(ids, codes, first.column("measured_at").to_pylist()) if c == 0}
    assert measured and unavailable, f"the kill must land mid-run: {codes}"

    # The machine comes back; the re-run measures exactly what no server could run.
    cluster.server("box-c", "box-c")
    cluster.wait_registered("box-c", 1)
    summary = collect.collect_target(tasks, chosen, hw, out, cfg)
    assert summary["retried"] == summary["measured"] == len(unavailable)
    assert summary["programs_already_measured"] == len(measured)
    final = rec.read_records(out / "parts")
    ids = final.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert final.column("error_no").to_pylist() == [0] * 8, final.column("error_msg").to_pylist()
    kept = {r: m for r, m in zip(ids, final.column("measured_at").to_pylist()) if r in measured}
    assert kept == measured, "finished measurements are never redone"
    assert rec.read_records(out / "retried").num_rows == len(unavailable)  # what happened stays on record
    assert (out / "summary.json").exists()


def test_one_key_one_platform_and_stock_servers(cluster):
    """Servers of two machines under one key are refused; TVM's stock server is trusted only
    when its key is a catalog platform id, with a loud warning."""
    cluster.server("mixed-1", "mixed")
    cluster.server("mixed-2", "mixed", cpuinfo=OTHER)
    cluster.server("stock-zen3", "zen3-2c", stock=True)
    cluster.server("stock-box", "box-stock", stock=True)
    for key, n in (("mixed", 2), ("zen3-2c", 1), ("box-stock", 1)):
        cluster.wait_registered(key, n)
    cfg = lambda key: rpc.RpcConfig(tracker=cluster.tracker, key=key, request_timeout_s=20.0)  # noqa: E731
    with pytest.raises(UserError, match=rf"key 'mixed' are different machines \(.*{OTHER_ID}.*\): one key = one platform"):
        rpc.remote_platform(cfg("mixed"))
    info = rpc.remote_platform(cfg("zen3-2c"))
    assert info.platform.id == "zen3-2c" and not info.reported and info.targets is None
    with pytest.raises(UserError, match=r"TVM's stock server.*'box-stock' is not a catalog platform id"):
        rpc.remote_platform(cfg("box-stock"))
    for name in ("mixed-1", "mixed-2", "stock-zen3", "stock-box"):
        cluster.kill(name)
