"""The importer's output path can never destroy an input (issue 28, item 1): an output that is an
input, inside an input folder under a name the import reads, a folder, or an existing good file
when the import fails is refused or left untouched, with one line and exit 2."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tensorcost.errors import UserError
from tensorcost.records import read_records
from tensorcost.records.importer import import_tenset

LOGS = Path(__file__).resolve().parents[1] / "data" / "autoscheduler_logs"
LOG = LOGS / "resnet-50-NHWC-B1-llvm.json"


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_an_output_that_is_its_own_input_is_refused_and_the_input_kept(tmp_path):
    src = tmp_path / "x.json"
    shutil.copy(LOG, src)
    before = _md5(src)
    proc = _cli(src, "--out", src)
    assert proc.returncode == 2 and "is one of the inputs" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _md5(src) == before


def test_an_output_inside_the_imported_folder_under_a_records_name_is_refused(tmp_path):
    shutil.copy(LOG, tmp_path / "a.json")
    with pytest.raises(UserError, match="inside the input folder"):
        import_tenset([tmp_path], tmp_path / "b.json", workers=1, progress=False)
    # a Parquet output there is not read back as records: allowed, and every input imported
    report = import_tenset([tmp_path], tmp_path / "out.parquet", workers=1, progress=False)
    assert report.imported == 26


def test_a_failed_import_leaves_the_good_output_it_would_replace(tmp_path):
    good = tmp_path / "good.parquet"
    import_tenset([LOG], good, workers=1, progress=False)
    before = _md5(good)
    empty = tmp_path / "in" / "empty.json"
    empty.parent.mkdir()
    empty.write_text("")
    proc = _cli(empty, "--out", good)
    assert proc.returncode == 2 and "left as it was" in proc.stderr, proc.stderr
    assert _md5(good) == before and read_records(good).num_rows == 26
    assert not list(tmp_path.glob("*.tmp"))  # no debris beside it


@pytest.mark.parametrize("bad", ["folder", "under_a_file"])
def test_output_paths_that_cannot_be_files_are_one_line(tmp_path, bad):
    (tmp_path / "f").write_text("x")
    out = tmp_path if bad == "folder" else tmp_path / "f" / "out.parquet"
    proc = _cli(LOG, "--out", out)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("target", ["../../etc.passwd", "zen5-2c.avx2-t1\n", "/abs.x", "a/b.c"])
def test_a_target_that_would_become_a_path_is_refused(tmp_path, target):
    proc = _cli(LOG, "--out", tmp_path / "o.parquet", "--target", target)
    assert proc.returncode == 2 and "not a valid target id" in proc.stderr, proc.stderr
    assert not (tmp_path / "o.parquet").exists()
