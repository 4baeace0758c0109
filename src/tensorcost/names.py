"""Every name that becomes a path, a registry name or a file name passes here, before any path is
built: target ids, platform ids, dataset slots, model presets, experiment names, variant names,
aliases, RPC device keys.

One rule for all: a full match (`re.fullmatch`: a trailing newline is not "the end") of a small
ASCII grammar (a Unicode look-alike of a letter is not a letter), at most MAX_LENGTH characters.
None of the grammars admits `/`, `\\`, `..` as a component, a leading `.` or `-`, or whitespace,
so a checked name joined to a folder stays in that folder.
"""

from __future__ import annotations

import re

MAX_LENGTH = 120

GRAMMARS: dict[str, tuple[re.Pattern, str]] = {
    "platform id": (re.compile(r"[a-z0-9][a-z0-9_-]*"), "lowercase letters, digits, '-' and '_', starting with a letter or digit"),
    "variant id": (re.compile(r"[a-z0-9][a-z0-9-]*"), "lowercase letters, digits and '-', starting with a letter or digit"),
    "target id": (re.compile(r"[a-z0-9][a-z0-9_-]*\.[a-z0-9][a-z0-9-]*"), "<platform>.<variant>, e.g. zen5-2c.avx2-t1"),
    "model preset": (re.compile(r"[a-z][a-z0-9_]*"), "lowercase letters, digits and '_', starting with a letter (e.g. lightgbm_reg)"),
    "experiment": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*"), "letters, digits, '.', '-' and '_', starting with a letter or digit"),
    "alias": (re.compile(r"[a-z][a-z0-9_-]*"), "lowercase letters, digits, '-' and '_', starting with a letter"),
    "variant": (re.compile(r"[a-z][a-z0-9_]*-[0-9]{1,3}"), "<strategy>-<percent>, e.g. kcenter-20"),
    "network": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*"), "letters, digits, '.', '-' and '_', starting with a letter or digit"),
    "device key": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*"), "letters, digits, '.', '-' and '_', starting with a letter or digit"),
}


class NameError_(ValueError):
    """A name that must not become a path (ValueError: pydantic validators turn it into a params error)."""


def check_name(kind: str, value, *, where: str = "") -> str:
    """`value` if it is a valid `kind` name, else a one-line error naming what was wrong."""
    pattern, rule = GRAMMARS[kind]
    label = f"{where}: " if where else ""
    if not isinstance(value, str):
        raise NameError_(f"{label}a {kind} is a string, got {type(value).__name__} {str(value)[:60]!r}")
    if not value:
        raise NameError_(f"{label}the {kind} is empty ({rule})")
    if len(value) > MAX_LENGTH:
        raise NameError_(f"{label}{kind} {value[:40]!r}... is {len(value)} characters (at most {MAX_LENGTH})")
    if ".." in value or not pattern.fullmatch(value):
        raise NameError_(f"{label}{value!r} is not a valid {kind}: {rule}")
    return value


def is_name(kind: str, value) -> bool:
    try:
        check_name(kind, value)
        return True
    except NameError_:
        return False
