"""The TenSet / auto_scheduler importer on real record files and on malformed input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tensorcost import dataset
from tensorcost.records import read_records
from tensorcost.records.importer import import_tenset
from tensorcost.records.tenset import target_id_for

LOGS = Path(__file__).resolve().parents[1] / "data" / "autoscheduler_logs"


def _count_records(path: Path) -> int:
    return sum(1 for l in path.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#"))


def test_imports_every_real_record(tmp_path):
    out = tmp_path / "out.parquet"
    report = import_tenset([LOGS], out, workers=1)
    expected = sum(_count_records(f) for f in LOGS.glob("*.json"))  # 26 + 1 + 1 in the shipped files
    assert report.imported == expected and report.skipped == 0
    t = read_records(out)
    assert t.num_rows == expected
    rows = t.to_pylist()
    # versions v0.2, v0.3 and v0.5 all parsed
    assert {r["tvm_version"] for r in rows} == {"auto_scheduler-v0.2", "auto_scheduler-v0.3", "auto_scheduler-v0.5"}
    mm = next(r for r in rows if r["task_name"] == "matmul_add")
    assert mm["op_kind"] == "matmul" and mm["latencies"] == [0.0044742] and mm["latency_s"] == 0.0044742
    assert json.loads(mm["shapes"]) == [[1024, 1024, 1024, "float32"]]
    assert json.loads(mm["trace"])[0] == ["SP", 2, 0, 1024, [2, 1, 4], 1]
    assert mm["target"] == "unknown-llvm.tenset"
    conv = next(r for r in rows if r["task_name"] == "conv2d_layer")
    assert conv["target"] == "unknown-cuda.tenset"
    resnet = [r for r in rows if r["target"] == "unknown-llvm-core-avx2.tenset"]
    assert len(resnet) == 26 and len({r["record_id"] for r in rows}) == len(rows)
    assert not (tmp_path / "out.parquet.quarantine.jsonl").exists()


def test_platform_directory_names_the_target(tmp_path):
    d = tmp_path / "dataset" / "measure_records" / "t4"
    d.mkdir(parents=True)
    shutil.copy(LOGS / "conv2d.json", d / "task.json")
    out = tmp_path / "o.parquet"
    import_tenset([tmp_path / "dataset" / "measure_records"], out, workers=1)
    assert read_records(out).column("target").to_pylist() == ["t4.tenset"]
    assert target_id_for(Path("x/measure_records/graviton2/a.json"), "llvm -mcpu=x", None) == "graviton2.tenset"
    assert target_id_for(Path("a.json"), "llvm -keys=cpu -mcpu=core-avx2", None) == "unknown-llvm-core-avx2.tenset"
    assert target_id_for(Path("a.json"), "llvm", "mine") == "mine"


def test_malformed_lines_are_reported_quarantined_and_good_lines_kept(tmp_path):
    good = [l for l in (LOGS / "resnet-50-NHWC-B1-llvm.json").read_text().splitlines() if l.startswith("{")]
    bad = [
        '{"i": [["[\\"abc\\", 1]", "llvm"], [[], []]], "r": [[0.1], 0, 1.0, 1]',  # truncated JSON
        '{"r": [[0.1], 0, 1.0, 1], "v": "v0.6"}',  # no "i"
        '{"i": [["[\\"abc\\", 1]", "llvm"], [[], []]], "r": [[-1.0], 0, 1.0, 1], "v": "v0.6"}',  # negative cost
        '{"i": [["not json", "llvm"], [[], []]], "r": [[0.1], 0, 1.0, 1], "v": "v0.6"}',  # bad workload key
        "[1, 2, 3]",  # not an object
    ]
    lines = good[:3] + bad[:2] + good[3:6] + bad[2:] + good[6:8]
    src = tmp_path / "mixed.json"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.parquet"
    report = import_tenset([src], out, workers=1)
    assert report.imported == 8 and report.skipped == 5
    assert report.examples[0].startswith(f"{src}:4: invalid JSON")
    assert f"{src}:5: missing key 'i'" in report.examples
    assert any(e.startswith(f"{src}:9:") and "non-positive" in e for e in report.examples)
    q = [json.loads(l) for l in (tmp_path / "o.parquet.quarantine.jsonl").read_text().splitlines()]
    assert [e["where"] for e in q] == [f"{src}:{n}" for n in (4, 5, 9, 10, 11)]
    assert q[1]["line"] == bad[1]
    assert read_records(out).num_rows == 8


def test_failed_measurements_become_error_records(tmp_path):
    line = json.loads(next(l for l in (LOGS / "matmul.json").read_text().splitlines() if l.startswith("{")))
    line["r"] = [[1e10], 4, 1.0, 5]
    src = tmp_path / "err.json"
    src.write_text(json.dumps(line) + "\n")
    import_tenset([src], tmp_path / "o.parquet", workers=1)
    row = read_records(tmp_path / "o.parquet").to_pylist()[0]
    assert row["error_no"] == 4 and row["latency_s"] is None and row["latencies"] == []


def test_parallel_import_equals_serial(tmp_path):
    for i in range(4):
        shutil.copy(LOGS / "resnet-50-NHWC-B1-llvm.json", tmp_path / f"r{i}.json")
    import_tenset([tmp_path], tmp_path / "serial.parquet", workers=1)
    import_tenset([tmp_path], tmp_path / "parallel.parquet", workers=2)
    a = pq.read_table(tmp_path / "serial.parquet").sort_by("record_id")
    b = pq.read_table(tmp_path / "parallel.parquet").sort_by("record_id")
    assert a.num_rows == 4 * 26 and a.equals(b)


def test_cli_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(LOGS), "--out", str(tmp_path / "o.parquet")], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["imported"] == 28
    (tmp_path / "junk.json").write_text("garbage\n")
    bad = subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(tmp_path / "junk.json"), "--out", str(tmp_path / "j.parquet")], capture_output=True, text=True)
    assert bad.returncode == 1 and "junk.json:1: invalid JSON" in bad.stderr and "nothing imported" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(tmp_path / "nope"), "--out", str(tmp_path / "n.parquet")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_dataset_stats_counts(tmp_path):
    out = tmp_path / "o.parquet"
    import_tenset([LOGS], out, workers=1)
    s = dataset.stats([out])
    assert s["targets"]["unknown-llvm-core-avx2.tenset"] == {"tasks": 26, "networks": 0, "valid_records": 26, "error_records": 0}
    assert s["total_valid_records"] == 28


# NaN/Infinity are not JSON: the line is rejected as invalid JSON before the cost checks.
@pytest.mark.parametrize("costs,reason", [([float("nan"), 0.1], "invalid JSON"), ([0.1, float("inf")], "invalid JSON"), ([0.1, -1.0], "non-positive or non-finite"), ([0.1, 1e400 * 0], "invalid JSON"), (["x"], "must be numbers"), ([], "without costs")])
def test_bad_costs_are_rejected(tmp_path, costs, reason):
    line = json.loads(next(l for l in (LOGS / "matmul.json").read_text().splitlines() if l.startswith("{")))
    line["r"][0] = costs
    src = tmp_path / "c.json"
    src.write_text(json.dumps(line) + "\n")
    report = import_tenset([src], tmp_path / "o.parquet", workers=1)
    assert report.skipped == 1 and reason in report.examples[0]


def test_a_non_string_version_is_quarantined_not_a_crash(tmp_path):
    line = json.loads(next(l for l in (LOGS / "matmul.json").read_text().splitlines() if l.startswith("{")))
    src = tmp_path / "v.json"
    src.write_text(json.dumps(line) + "\n" + json.dumps(line | {"v": ["v0.6"]}) + "\n")
    report = import_tenset([src], tmp_path / "o.parquet", workers=1)
    assert report.imported == 1 and report.examples == [f"{src}:2: 'v' must be a version string"]


def test_spool_files_are_removed_after_the_import(tmp_path, monkeypatch):
    from tensorcost.records import importer

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(importer, "_spool_root", lambda out: str(spool))
    for i in range(3):
        shutil.copy(LOGS / "resnet-50-NHWC-B1-llvm.json", tmp_path / f"r{i}.json")
    report = import_tenset(sorted(tmp_path.glob("r*.json")), tmp_path / "o.parquet", workers=2)
    assert report.imported == 3 * 26 and read_records(tmp_path / "o.parquet").num_rows == 3 * 26
    assert list(spool.iterdir()) == []
