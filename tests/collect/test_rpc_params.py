"""`measure.rpc` without servers: params validation, an unreachable tracker as one line (exit 2,
no hang), and how the driver files a platform an RPC server detected."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tensorcost import hardware, rpc
from tensorcost.hardware.detect import catalog_platform
from tensorcost.params import MeasureConfig, ParamsError, load_collection_params
from tensorcost.services import free_port


def _params(tmp_path: Path, rpc_section) -> Path:
    path = tmp_path / "collect.yaml"
    path.write_text(yaml.safe_dump({"measure": {"number": 1, "rpc": rpc_section}}))
    return path


def test_local_is_the_default_and_a_valid_section_parses(tmp_path):
    assert MeasureConfig().rpc is None
    assert load_collection_params(_params(tmp_path, None)).measure.rpc is None
    cfg = load_collection_params(_params(tmp_path, {"tracker": "10.0.0.5:9190", "key": "zen5-2c", "session_timeout_s": 20})).measure.rpc
    assert (cfg.host, cfg.port, cfg.key, cfg.session_timeout_s, cfg.servers) == ("10.0.0.5", 9190, "zen5-2c", 20, 0)


@pytest.mark.parametrize("section, message", [
    ({"tracker": "localhost", "key": "a"}, r"measure\.rpc\.tracker: expected host:port such as '127.0.0.1:9190' \(got 'localhost'\)"),
    ({"tracker": "h:70000", "key": "a"}, r"measure\.rpc\.tracker: expected host:port"),
    ({"tracker": "h:9190", "key": "box a"}, r"measure\.rpc\.key: a device key is letters, digits"),
    ({"tracker": "h:9190"}, r"measure\.rpc\.key: Field required"),
    ({"tracker": "h:9190", "key": "a", "timeout": 3}, r"measure\.rpc\.timeout: unknown key"),
    ({"tracker": "h:9190", "key": "a", "session_timeout_s": 0}, r"measure\.rpc\.session_timeout_s: Input should be greater than or equal to 1"),
])
def test_a_wrong_rpc_section_is_one_line_naming_the_key(tmp_path, section, message):
    with pytest.raises(ParamsError, match=message) as err:
        load_collection_params(_params(tmp_path, section))
    assert "\n" not in str(err.value)


def test_an_unreachable_tracker_is_one_line_and_exit_2_through_the_cli(tmp_path):
    port = free_port()  # nobody listens there
    params = _params(tmp_path, {"tracker": f"127.0.0.1:{port}", "key": "box-a", "connect_timeout_s": 2.0})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tensorcost.cli", "dataset", "collect", "--work", str(tmp_path), "--target", "remote.avx2-t1",
                           "--params", str(params)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the RPC tracker 127.0.0.1:{port} is unreachable"), proc.stderr
    assert "python -m tvm.exec.rpc_tracker" in lines[0]
    assert time.monotonic() - t0 < 60


def test_a_tracker_that_never_answers_times_out_quickly():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(rpc.RpcUnavailable, match=r"unreachable \(no answer within 0.5 s\)"):
            rpc.tracker_summary("127.0.0.1", port, 0.5)
        assert time.monotonic() - t0 < 5


def test_a_platform_a_server_detected_is_filed_as_this_drivers_catalog_files_it():
    known = hardware.get_platform("zen4-2c")
    assert catalog_platform(known) is not None and catalog_platform(known).id == "zen4-2c"
    other = dataclasses.replace(known, l2_kb=512.0, model_name="AMD EPYC other")  # the same id, another machine
    assert catalog_platform(other).id.startswith("zen4-2c-") and len(catalog_platform(other).id) == len("zen4-2c-") + 4
    new = dataclasses.replace(known, id="zen9-64c", microarch="zen9", cores=64, fingerprint={})
    assert catalog_platform(new).id == "zen9-64c"
