"""Rooms meet through public names (issue 30 item 3): no test reaches a private name (`_x`) of
another room than the one it tests, benchmarks use public functions only, and tests never import
benchmarks (benchmarks may import the test-support modules: helpers.py, tenset_fuzz.py)."""

from __future__ import annotations

import ast

from codegraph import PACKAGE_DIR, ROOT

TESTS, BENCHMARKS = ROOT / "tests", ROOT / "benchmarks"
SUPPORT_ROOM = {"tenset_fuzz.py": "records"}  # test-support modules at tests/'s top: the room they probe
ROOMS = {p.stem for p in PACKAGE_DIR.glob("*.py")} | {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()}


def private_uses(source: str) -> list[tuple[int, str, str]]:
    """(line, room, name) of every private name of a tensorcost room the source reaches."""
    tree = ast.parse(source)
    alias: dict[str, str] = {}  # local name -> room
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "tensorcost" and len(parts) > 1 and a.asname:
                    alias[a.asname] = parts[1]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tensorcost":
            parts = node.module.split(".")
            for a in node.names:
                room = parts[1] if len(parts) > 1 else a.name
                if len(parts) == 1 and a.name in ROOMS:
                    alias[a.asname or a.name] = a.name
                elif len(parts) > 1 and (PACKAGE_DIR.joinpath(*parts[1:], a.name + ".py").exists() or PACKAGE_DIR.joinpath(*parts[1:], a.name).is_dir()):
                    alias[a.asname or a.name] = room
                if a.name.startswith("_") and not a.name.startswith("__"):
                    out.append((node.lineno, room, a.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in alias \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            out.append((node.lineno, alias[node.value.id], node.attr))
    return sorted(set(out))


def test_benchmarks_use_public_names():
    bad = {p.name: hits for p in sorted(BENCHMARKS.rglob("*.py")) if (hits := private_uses(p.read_text()))}
    assert not bad, bad


def test_tests_reach_private_names_of_their_own_room_only():
    bad = {}
    for p in sorted(TESTS.rglob("*.py")):
        rel = p.relative_to(TESTS)
        own = rel.parts[0] if len(rel.parts) > 1 else SUPPORT_ROOM.get(rel.name)
        if own == "code":
            continue  # this folder's own probes
        hits = [h for h in private_uses(p.read_text()) if h[1] != own]
        if hits:
            bad[rel.as_posix()] = hits
    assert not bad, bad


def test_tests_never_import_benchmarks():
    bad = []
    for p in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "benchmarks" for n in names):
                bad.append(p.relative_to(TESTS).as_posix())
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py") and "benchmarks" in node.value:
                bad.append(p.relative_to(TESTS).as_posix())
    assert not bad, bad


def test_the_check_sees_a_private_use():
    src = "from tensorcost import registry\nfrom tensorcost.records import tenset\nregistry._client()\ntenset._Columns()\nfrom tensorcost.stages import _x\n"
    assert private_uses(src) == [(3, "registry", "_client"), (4, "records", "_Columns"), (5, "stages", "_x")]
