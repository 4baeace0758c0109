"""safeio's atomic writers: a result is replaced whole or not at all, and what a killed writer
left is swept by the next write into the folder."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from tensorcost import safeio
from tensorcost.errors import UserError


def test_failed_write_leaves_the_previous_result(tmp_path):
    out = tmp_path / "report.json"
    safeio.write_text(out, "good")
    with pytest.raises(RuntimeError):
        with safeio.atomic_output(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("cut")
    assert out.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_tmp_keeps_the_suffix_and_lives_beside_the_result(tmp_path):
    with safeio.atomic_output(tmp_path / "sub" / "fig.png") as tmp:
        assert tmp.parent == tmp_path / "sub" and tmp.name.endswith("-fig.png") and tmp.name.startswith(safeio.TMP_PREFIX)
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "fig.png").read_bytes() == b"x"


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(UserError, match="No space left.*nothing was replaced"):
        with safeio.atomic_output(out) as tmp:
            tmp.write_text("new")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert out.read_text() == "old"


def test_folder_swapped_whole_or_not_at_all(tmp_path):
    model = tmp_path / "model"
    with safeio.atomic_folder(model) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with safeio.atomic_folder(model) as tmp:
            (tmp / "weights").write_text("v2-half")
            raise RuntimeError("killed")
    assert (model / "weights").read_text() == "v1"
    with safeio.atomic_folder(model) as tmp:
        (tmp / "weights").write_text("v2")
    assert (model / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_kill_9_debris_is_swept_by_the_next_write(tmp_path):
    out = tmp_path / "r.json"
    code = ("import os, sys, time\nfrom tensorcost import safeio\n"
            f"with safeio.atomic_output({str(out)!r}) as tmp:\n    tmp.write_text('half')\n    print('ready', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    debris = [p for p in tmp_path.iterdir() if p.name.startswith(safeio.TMP_PREFIX)]
    assert len(debris) == 1 and not out.exists()
    safeio.write_text(out, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
