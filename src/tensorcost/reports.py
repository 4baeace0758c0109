"""Writing reports: JSON with NaN (a PCA of a task set without comparable pairs) as null."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .safeio import write_text


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
    write_text(path, to_json(obj))


# `dvc metrics show` prints one column per key of every metrics file together: the stages declare
# these few-key summaries as their metrics and keep the detail reports as plain outputs.
SUMMARY_DIR = Path("reports/summary")


def ranking_summary(model: str, metrics: dict) -> dict:
    """The served (or best) model and its PCA / top-1 / top-5, rounded for a terminal."""
    out = {"model": model}
    for k in ("pca", "top1", "top5"):
        if metrics.get(k) is not None:
            out[k] = round(float(metrics[k]), 3)
    if metrics.get("n_records") is not None:
        out["records"] = int(metrics["n_records"])
    return out


def evaluation_summary(metrics: dict) -> dict:
    """The evaluate stage's verdict in the same few keys as the other summaries: the best model by
    PCA on its first slot (evaluate.targets: this machine by default) under its first split, with
    which slot and split that is. Every slot x split x model: reports/metrics/evaluate.json."""
    for slot, by_split in metrics.items():
        for split, by_model in by_split.items():
            scored = {m: r for m, r in by_model.items() if isinstance(r, dict) and r.get("pca") is not None and r["pca"] == r["pca"]}
            if scored:
                best = max(scored, key=lambda m: scored[m]["pca"])
                return {"slot": slot, "split": split, **ranking_summary(best, scored[best])}
    return {}


def write_summary(name: str, summary: dict, root: Path = SUMMARY_DIR) -> None:
    write_json(Path(root) / f"{name}.json", summary)
