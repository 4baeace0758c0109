"""The command line as a user meets it: listings, and user errors as one line with exit status 2
(no traceback unless --debug or TENSORCOST_DEBUG=1), on this host and on simulated ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
CPUINFO = REPO / "tests" / "data" / "cpuinfo"


def _tc(*args, cwd=REPO, cpuinfo: Path | None = None, env_extra: dict | None = None):
    env = dict(os.environ)
    env.pop("TENSORCOST_DEBUG", None)
    if cpuinfo is not None:
        env["TENSORCOST_CPUINFO"] = str(cpuinfo)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "tensorcost.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_targets_json_lists_host_and_bundled_targets():
    rows = json.loads(_tc("targets", "--json").stdout)
    assert rows and all(set(r) >= {"id", "platform", "kind", "variant", "source", "available_here"} for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert by_id["sapphirerapids-2c.avx2-t1"]["source"] == "bundled" and by_id["h200.cuda"]["kind"] == "gpu"
    here = [r for r in rows if r["available_here"]]
    assert here and all(r["kind"] in ("cpu", "gpu") for r in here)


def test_targets_on_a_simulated_zen3_offer_no_avx512():
    rows = json.loads(_tc("targets", "--json", cpuinfo=CPUINFO / "zen3-epyc-7763.txt").stdout)
    here = {r["id"] for r in rows if r["available_here"]}
    assert "zen3-2c.avx2-t1" in here and not any("avx512" in t for t in here)


def test_platform_describes_the_host():
    doc = json.loads(_tc("platform", "--json", cpuinfo=CPUINFO / "sapphirerapids-xeon.txt").stdout)
    assert doc["cpu"]["microarch"] == "sapphirerapids" and "amx_tile" in doc["cpu"]["isa"] and "avx512-t2" in doc["variants"]
    assert "platform" in _tc("platform").stdout


def test_user_errors_are_one_line_with_status_2(tmp_path):
    line = _one_line_error(_tc("registry", "show", "--target", "../../escape", env_extra={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}))
    assert "malformed target id" in line
    line = _one_line_error(_tc("dataset", "remeasure", "--target", "cpu-avx2-t1", "--out", str(tmp_path / "x.parquet")))
    assert "malformed target id 'cpu-avx2-t1'" in line
    line = _one_line_error(_tc("stage", "records", "--target", "zen9-2c.avx2-t1", cwd=REPO))
    assert "zen9-2c" in line


def test_a_misspelt_split_is_one_line_naming_the_valid_ones(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")  # no feature store there: the name is checked first
    line = _one_line_error(_tc("study", "--models", "lightgbm_reg", "--splits", "within_task,by_hardware+by_famly",
                               "--out", str(tmp_path / "study.json"), cwd=tmp_path))
    assert "'by_hardware+by_famly'" in line and "by_hardware+by_family" in line
    assert not (tmp_path / "study.json").exists()


def test_an_aarch64_host_says_why_in_one_line(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    line = _one_line_error(_tc("stage", "host", cwd=tmp_path, cpuinfo=CPUINFO / "graviton2-aarch64.txt"))
    assert "aarch64" in line and "x86-64" in line


def test_bad_params_are_one_line_and_debug_shows_the_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("programs_per_task: 24", "programs_per_task: -1"))
    line = _one_line_error(_tc("stage", "host", cwd=tmp_path))
    assert "params.yaml: host.programs_per_task" in line
    debug = _tc("--debug", "stage", "host", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert "Traceback" in _tc("stage", "host", cwd=tmp_path, env_extra={"TENSORCOST_DEBUG": "1"}).stderr
    line = _one_line_error(_tc("stage", "host", cwd=tmp_path / "nowhere" if (tmp_path / "nowhere").mkdir() is None else tmp_path))
    assert "params file not found" in line
