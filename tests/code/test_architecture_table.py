"""docs/ARCHITECTURE.md's room table matches the code (issue 30 item 6): every room of the package
is in the table, and a room imports (anywhere in its files, lazy imports included) only the
foundation and the rooms its `may import` cell names; a row for a module (`models.ddp_train`)
holds for that module alone."""

from __future__ import annotations

import re

from codegraph import PACKAGE, PACKAGE_DIR, ROOT, imports_in, module_name

DOC = ROOT / "docs" / "ARCHITECTURE.md"
ANYTHING = {"stages", "cli"}  # entry points: "everything above"


def rooms_on_disk() -> set[str]:
    out = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    out |= {p.name for p in PACKAGE_DIR.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return out


def _section() -> str:
    return DOC.read_text().split("## Rooms", 1)[1].split("\n## ", 1)[0]


def foundation() -> set[str]:
    """The rooms every room may import, from the sentence that names them."""
    sentence = _section().split("The foundation", 1)[1].split("Each row", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", sentence)) & rooms_on_disk()


def table() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({row key (room or room.module): rooms it may import}, {row key: its row-mates})."""
    known = rooms_on_disk()
    allowed: dict[str, set[str]] = {}
    mates: dict[str, set[str]] = {}
    for line in _section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("room", "---"):
            continue
        keys = re.findall(r"`([a-z_.]+)`", cells[0])
        may = {w for w in re.findall(r"[a-z_]+", cells[2]) if w in known}
        for k in keys:
            allowed[k] = may
            mates[k] = {x.split(".")[0] for x in keys}
    return allowed, mates


def row_of(module: str, allowed: dict) -> str:
    """The most specific row of `tensorcost.a.b`: `a.b` if the table has it, else `a`."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in allowed:
            return ".".join(parts[:n])
    return parts[0]


def violations() -> dict[str, list[str]]:
    allowed, mates = table()
    base = foundation()
    out: dict[str, list[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        mod = module_name(path)
        if mod == PACKAGE:
            continue
        room = mod.split(".")[1]
        if room in ANYTHING:
            continue
        key = row_of(mod, allowed)
        deps = {m.split(".")[1] for m in imports_in(path) if m.count(".") >= 1} - {room}
        extra = sorted(deps - allowed.get(key, set()) - base - mates.get(key, set()))
        if extra:
            out[mod] = extra
    return out


def test_every_room_is_in_the_table():
    allowed, _ = table()
    missing = sorted(rooms_on_disk() - {k.split(".")[0] for k in allowed})
    assert not missing, f"docs/ARCHITECTURE.md's room table lacks {missing}"
    assert foundation() == {"errors", "names", "safeio", "digest"}


def test_rooms_import_only_what_the_table_allows():
    extra = violations()
    assert not extra, f"imports the table does not allow (fix the code or the table): {extra}"


def test_the_check_sees_an_import_the_table_does_not_allow(monkeypatch):
    allowed, mates = table()
    monkeypatch.setattr(__import__(__name__), "table", lambda: ({**allowed, "tuning": set()}, mates))
    assert "tensorcost.tuning" in violations()


def test_nothing_imports_the_entry_points():
    users = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        mod = module_name(path)
        if mod != PACKAGE and mod.split(".")[1] not in ANYTHING:
            bad = {m.split(".")[1] for m in imports_in(path) if m.count(".") >= 1} & ANYTHING
            if bad:
                users[mod] = sorted(bad)
    assert not users, users
