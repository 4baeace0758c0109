"""Writing reports: JSON with NaN (a PCA of a task set without comparable pairs) as null."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _clean(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def to_json(obj) -> str:
    return json.dumps(_clean(obj), indent=1, allow_nan=False)


def write_json(path: str | Path, obj) -> None:
    from .safeio import write_text

    write_text(path, to_json(obj))
