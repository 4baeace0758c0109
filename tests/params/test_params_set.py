"""`tensorcost params set`: one value changed, every comment and every other line kept, a value
the params refuse never written (issue 29 item 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tensorcost.errors import UserError
from tensorcost.params import load_params
from tensorcost.params_io import set_param

ROOT = Path(__file__).resolve().parents[2]


def test_setting_a_value_keeps_every_other_line(tmp_path):
    f = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", f)
    before = f.read_text().splitlines()
    old = set_param(f, "measure.rpc", "{tracker: 'localhost:9190', key: team-key}")
    assert old == ""  # null before
    after = f.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(after) == len(before) and len(changed) == 1 and "rpc:" in changed[0][1]
    assert "# or {tracker: HOST:PORT, key: KEY}" in changed[0][1]  # the line's own comment too
    p = load_params(f)
    assert p.measure.rpc.tracker == "localhost:9190" and p.measure.rpc.key == "team-key"
    set_param(f, "measure.rpc", "null")
    back = f.read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, back)) if a != b] in ([], [before.index(changed[0][0])])  # at most its comment's column moved
    assert load_params(f).measure.rpc is None and back[before.index(changed[0][0])].split() == changed[0][0].split()


def test_a_refused_value_leaves_the_file_as_it_was(tmp_path):
    f = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", f)
    before = f.read_bytes()
    for key, value in (("measure.number", "-3"), ("measure.nope", "1"), ("nosection.x", "1"), ("measure.number", "[unclosed")):
        with pytest.raises(UserError):
            set_param(f, key, value)
        assert f.read_bytes() == before, key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no temp file left
