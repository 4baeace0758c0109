"""Hashing files the way DVC does (md5 of the content), and the git commit a model was trained at.
(params.yaml is read by `params.load_params`, typed.)"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path



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


def set_param(path: str | Path, key: str, value_yaml: str) -> str:
    """Set the dotted `key` of a params file to `value_yaml` (a YAML value, e.g. `{tracker:
    'h:9190', key: k}`) with a round-trip YAML editor: every other line, comment and order stays
    as it was. The new file is checked as params (params.load_params) before it replaces the
    old one (atomically). Returns the previous value as YAML text ('' when the key was new)."""
    import io
    import os
    import tempfile

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from .errors import UserError
    from .params import load_params

    path = Path(path)
    yaml = YAML()  # round-trip mode, written the way params.yaml is: nothing re-wrapped or re-indented
    yaml.preserve_quotes = True
    yaml.width = 1 << 20
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    try:
        doc = yaml.load(path.read_text())
        value = yaml.load(value_yaml)  # round-trip too: `{a: 1}` stays one flow-style line
    except (OSError, YAMLError) as exc:
        raise UserError(f"{path} or the value {value_yaml!r}: {str(exc).splitlines()[0][:200]}") from None
    parts = key.split(".")
    node = doc
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"{path}: no section {'.'.join(parts[:i + 1])!r} to set {key} in")
        node = node[part]
    if not isinstance(node, dict):
        raise UserError(f"{path}: {'.'.join(parts[:-1])} is not a section")
    old = node.get(parts[-1])
    was = "" if old is None else json.dumps(old, default=str)
    node[parts[-1]] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{os.getpid()}.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(out.getvalue())
        load_params(tmp)  # a value the params refuse never reaches the file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return was
