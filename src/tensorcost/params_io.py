"""Hashing files the way DVC does (md5 of the content), and the git commit a model was trained at.
(params.yaml is read by `params.load_params`, typed.)"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .errors import UserError
from .params import load_params
from .safeio import atomic_output


def md5_file(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock"], capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _round_trip_yaml():
    """ruamel.yaml in round-trip mode, set up to write the way params.yaml is written: nothing
    re-wrapped or re-indented, comments and order kept."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 1 << 20
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def edit_params(path: str | Path, edit, validate: bool = True) -> None:
    """Apply `edit(doc)` to a params file with a round-trip YAML editor (every other line and
    comment stays) and replace the file atomically; with `validate`, the new text must load as
    params (params.load_params) first, so a refused value never reaches the file."""
    path = Path(path)
    yaml = _round_trip_yaml()
    try:
        doc = yaml.load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise UserError(f"{path}: {str(exc).splitlines()[0][:200]}") from None
    edit(doc)
    out = io.StringIO()
    yaml.dump(doc, out)
    with atomic_output(path) as tmp:
        tmp.write_text(out.getvalue())
        if validate:
            load_params(tmp)  # a value the params refuse never reaches the file


def set_param(path: str | Path, key: str, value_yaml: str) -> str:
    """Set the dotted `key` of a params file to `value_yaml` (a YAML value, e.g. `{tracker:
    'h:9190', key: k}`) with the round-trip editor (`edit_params`): every other line, comment and
    order stays as it was; the new file is checked as params before it replaces the old one.
    Returns the previous value as YAML text ('' when the key was new)."""
    path = Path(path)
    try:
        value = _round_trip_yaml().load(value_yaml)  # round-trip too: `{a: 1}` stays one flow-style line
    except YAMLError as exc:
        raise UserError(f"the value {value_yaml!r}: {str(exc).splitlines()[0][:200]}") from None
    parts = key.split(".")
    previous: list[str] = []

    def assign(doc) -> None:
        node = doc
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"{path}: no section {'.'.join(parts[:i + 1])!r} to set {key} in")
            node = node[part]
        if not isinstance(node, dict):
            raise UserError(f"{path}: {'.'.join(parts[:-1])} is not a section")
        old = node.get(parts[-1])
        previous.append("" if old is None else json.dumps(old, default=str))
        node[parts[-1]] = value

    edit_params(path, assign)
    return previous[0]
