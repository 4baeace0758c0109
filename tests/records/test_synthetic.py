"""Synthetic TenSet-format records (`tensorcost dataset synth-tenset`): import cleanly, exact size,
fresh ids per copy, labelled synthetic everywhere, and refused by the registry."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tensorcost.records import read_records
from tensorcost.records.synthetic import is_synthetic_target
from tensorcost.synthetic_tenset import write_synthetic_tenset
from tensorcost.records.importer import import_tenset
from tensorcost.records.tenset import target_id_for

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "bundled"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = write_synthetic_tenset(out / "a", 3000, seed=0, progress=False, root=BUNDLED)
    report = import_tenset([out / "a"], out / "a.parquet", workers=1, progress=False)
    return out, summary, report, read_records(out / "a.parquet")


def test_imports_without_quarantine_exact_rows(synthetic):
    out, summary, report, table = synthetic
    assert report.imported == 3000 and report.skipped == 0 and report.bad_files == 0
    assert not (out / "a.parquet.quarantine.jsonl").exists()
    assert table.num_rows == summary["rows"] == 3000
    files = sorted((out / "a" / "measure_records" / "synthetic-zen5-2c").glob("*.json"))
    assert len(files) == summary["files"] == report.files
    assert (out / "a" / "SYNTHETIC.md").exists()


def test_ids_unique_and_target_synthetic(synthetic):
    _, summary, _, table = synthetic
    assert set(table.column("target").to_pylist()) == {"synthetic-zen5-2c.tenset"} == {summary["target_id"]}
    assert is_synthetic_target(summary["target_id"])
    assert len(set(table.column("record_id").to_pylist())) == table.num_rows
    # one task id per file: every copy of a source task is a new task
    assert len(set(table.column("task_id").to_pylist())) == summary["files"]


def test_traces_are_the_bundled_programs_and_latencies_vary(synthetic):
    _, _, _, table = synthetic
    bundled = set(pq.read_table(BUNDLED / "programs" / "cpu" / "programs.parquet", columns=["trace"]).column("trace").to_pylist())
    traces = table.column("trace").to_pylist()
    assert all(t in bundled for t in traces)  # byte for byte: featurized as the real programs are
    lat = np.array(table.column("latency_s").to_pylist())
    assert (lat > 0).all() and np.isfinite(lat).all() and len(np.unique(lat)) == len(lat)
    # the same program's latency varies by the platform's noise, around its measured value
    source = pq.read_table(BUNDLED / "platforms" / "zen5-2c" / "avx2-t1.parquet", columns=["trace", "latency_s"]).to_pydict()
    measured = dict(zip(source["trace"], source["latency_s"]))
    ratios = np.log(lat / np.array([measured[t] for t in traces]))
    assert 0.03 < ratios.std() < 0.3 and abs(np.median(ratios)) < 0.03


def test_deterministic_per_seed(synthetic, tmp_path):
    out, summary, _, _ = synthetic
    again = write_synthetic_tenset(tmp_path / "b", 3000, seed=0, progress=False, root=BUNDLED)
    other = write_synthetic_tenset(tmp_path / "c", 3000, seed=1, progress=False, root=BUNDLED)
    d0, d1, d2 = (Path(s["platform_dir"]) for s in (summary, again, other))
    files = sorted(p.name for p in d0.iterdir())
    assert files == sorted(p.name for p in d1.iterdir())
    assert all((d0 / f).read_bytes() == (d1 / f).read_bytes() for f in files)
    assert set(files).isdisjoint(p.name for p in d2.iterdir())  # another seed: other task ids


def test_programs_per_task_and_refusals(tmp_path):
    s = write_synthetic_tenset(tmp_path / "d", 250, seed=3, programs_per_task=100, progress=False, root=BUNDLED)
    assert s["files"] == 3 and s["rows"] == 250
    lines = [len(p.read_text().splitlines()) for p in Path(s["platform_dir"]).iterdir()]
    assert sorted(lines) == [50, 100, 100]
    from tensorcost.errors import UserError

    with pytest.raises(UserError, match="already exists"):
        write_synthetic_tenset(tmp_path / "d", 10, progress=False, root=BUNDLED)
    with pytest.raises(UserError, match="no measured noise"):  # no noise file: no noise to copy
        write_synthetic_tenset(tmp_path / "e", 10, source_target="h200.cuda", progress=False, root=BUNDLED)


def test_importer_labels_synthetic_even_when_overridden():
    p = Path("x/measure_records/synthetic-zen5-2c/abc.json")
    assert target_id_for(p, "llvm -mcpu=haswell", None) == "synthetic-zen5-2c.tenset"
    assert target_id_for(p, "llvm", "zen5-2c.tenset") == "synthetic-zen5-2c.tenset"
    assert target_id_for(p, "llvm", "synthetic-x.tenset") == "synthetic-x.tenset"
    assert target_id_for(Path("t.json"), "llvm -model=synthetic-zen5-2c", None) == "synthetic-zen5-2c.tenset"
    assert target_id_for(Path("e5-2673/t.json"), "llvm", None) == "e5-2673.tenset"  # real TenSet unchanged
    assert not is_synthetic_target("zen5-2c.tenset") and not is_synthetic_target(None)


def test_cli_writes_and_labels(tmp_path):
    from typer.testing import CliRunner

    from tensorcost.cli import app

    import os

    cwd = os.getcwd()
    os.chdir(ROOT)  # the bundled dataset is found from the repository root, as every command's
    try:
        res = CliRunner().invoke(app, ["dataset", "synth-tenset", "--rows", "120", "--out", str(tmp_path / "o"), "--seed", "2"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["rows"] == 120 and summary["target_id"] == "synthetic-zen5-2c.tenset"


def test_registry_refuses_synthetic_targets(mlflow_store, tmp_path):
    from helpers import register_small_lightgbm

    from tensorcost import registry
    from tensorcost.errors import UserError

    with pytest.raises(UserError, match="synthetic"):
        register_small_lightgbm(tmp_path, "synthetic-zen5-2c.tenset", "syn", lambda y: y)
    with pytest.raises(UserError, match="synthetic"):
        registry.promote("synthetic-zen5-2c.tenset")
    assert not (tmp_path / "mlflow.db").exists()  # refused before any store was written


def test_a_synthetic_platform_has_its_source_hardware_under_its_own_name():
    from tensorcost.hardware import UnknownTargetError
    from tensorcost.hardware.catalog import catalog_target

    synthetic = catalog_target("synthetic-zen5-2c.tenset")
    assert synthetic.id == "synthetic-zen5-2c.tenset" and "synthetic" in synthetic.platform.source
    assert synthetic.features() == catalog_target("zen5-2c.tenset").features()
    with pytest.raises(UnknownTargetError):
        catalog_target("synthetic-nosuchcpu-2c.tenset")
