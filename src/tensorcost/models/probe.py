"""Does a model directory load and predict? Asked in a child process with a time limit, so that a
model whose files pass every hash but whose structure crashes (SIGSEGV), aborts or hangs the
library that parses it is a refusal, not the death of the command that asked (issue 28).

    python -m tensorcost.models.probe DIR [--feature-schema S]

prints one JSON line {"ok": true, "family": ..., "n": ...} and exits 0, or exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..features import FeatureTable
from ..features.program import COMPACT_DIM
from . import load_model

PROBE_ROWS = 8
PROBE_TIMEOUT_S = 120.0


def probe_table(feature_names: list[str], n: int = PROBE_ROWS, seed: int = 0):
    """A small table of `n` made-up programs with the model's inputs: flat vectors of the model's
    width and three tokens each (real kinds and annotations: index 0)."""
    rng = np.random.default_rng(seed)
    d = len(feature_names)
    frame = pd.DataFrame({"record_id": [f"probe{i}" for i in range(n)], "task_id": ["probe"] * n, "program_id": [f"p{i}" for i in range(n)],
                          "slot": ["probe"] * n, "target": ["probe.probe"] * n, "task_weight": np.ones(n, np.int32), "networks": ['{"probe": 1}'] * n,
                          "latency_s": np.linspace(1e-3, 2e-3, n), "label": np.linspace(1.0, 0.5, n)})
    tokens = np.zeros((3 * n, COMPACT_DIM), np.float32)
    tokens[:, 2:] = rng.random((3 * n, COMPACT_DIM - 2))
    return FeatureTable(frame, "probe", flat=rng.random((n, d)).astype(np.float32), token_offsets=np.arange(0, 3 * n + 1, 3), token_rows=tokens,
                        feature_names=feature_names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("directory", type=Path)
    ap.add_argument("--feature-schema")
    a = ap.parse_args(argv)

    model = load_model(a.directory, a.feature_schema)
    if "ms_features" in model.inputs:  # TVM's XGBoost reads MetaSchedule features: loading it is the check
        print(json.dumps({"ok": True, "family": model.family, "n": 0}))
        return 0
    scores = np.asarray(model.predict(probe_table(list(model.metadata.feature_names or []))), dtype=np.float64)
    if scores.shape != (PROBE_ROWS,) or not np.isfinite(scores).all():
        print(json.dumps({"ok": False, "why": f"predict gave {scores.shape} scores, finite: {bool(np.isfinite(scores).all())}"}))
        return 3
    print(json.dumps({"ok": True, "family": model.family, "n": PROBE_ROWS}))
    return 0


def probe_model(directory: Path, feature_schema: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(ok, why): whether the model in `directory` loads and scores the probe table in a child
    process within `timeout_s`."""
    cmd = [sys.executable, "-m", "tensorcost.models.probe", str(directory)] + (["--feature-schema", feature_schema] if feature_schema else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"loading and scoring it did not finish in {timeout_s:g} s (a hang)"
    if proc.returncode == 0:
        return True, "loads and predicts"
    if proc.returncode < 0:
        return False, f"loading or scoring it killed the process (signal {-proc.returncode})"
    last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
    return False, f"loading or scoring it failed: {last[:300]}"


if __name__ == "__main__":
    sys.exit(main())
