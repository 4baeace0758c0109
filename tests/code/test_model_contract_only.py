"""The model contract is the only way in (issue 30 item 4): outside models/, no code compares a
family name or creates a model of a literal family; what differs between families (blending,
embeddings, run params, preset members) is asked of the family (`CostModel` class attributes and
methods)."""

from __future__ import annotations

import ast

import pytest

from codegraph import PACKAGE_DIR
from tensorcost.errors import UserError
from tensorcost.models import FAMILIES, create_model, family_class


def family_branches(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            consts = [c.value for c in sides if isinstance(c, ast.Constant)]
            about_family = any("family" in (getattr(c, "attr", "") or getattr(c, "id", "")) for c in sides)  # not a strategy named "random"
            if about_family and any(c in FAMILIES for c in consts if isinstance(c, str)):
                found.append((node.lineno, "compares a family name"))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "create_model" \
                and node.args and isinstance(node.args[0], ast.Constant):
            found.append((node.lineno, f"create_model({node.args[0].value!r})"))
    return found


def test_no_caller_branches_on_a_family():
    offenders = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if rel.startswith("models/"):
            continue
        hits = family_branches(path.read_text())
        if hits:
            offenders[rel] = hits
    assert not offenders, offenders


def test_the_check_sees_a_branch():
    assert family_branches('if spec.family == "ensemble":\n    pass\nm = create_model("attention", t, s, n)\n') == [(1, "compares a family name"), (3, "create_model('attention')")]


def test_what_families_say_about_themselves():
    assert [f for f in FAMILIES if family_class(f).embeds] == ["attention"]
    assert [f for f in FAMILIES if family_class(f).member_presets] == ["ensemble"]
    assert family_class("lightgbm").reuse_trained({}, {}, None) is None
    flat = family_class("ensemble").run_params({"members": [{"name": "a", "weight": 1.0}, {"name": "b", "weight": 2.0}], "x": 1})
    assert flat == {"x": 1, "members": "ax1,bx2"}
    with pytest.raises(UserError, match="lightgbm family has no program embedding"):
        create_model("lightgbm", "t.v", "s", ["f0"]).embed(None)
