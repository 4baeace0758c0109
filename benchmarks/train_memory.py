"""What the train stage holds: a slot's table read whole against its store read as a view (a
fragment at a time), own rows against `train.pool_platforms`' pool, measured in fresh processes.

    .venv/bin/python benchmarks/train_memory.py --features-dir data/features \
        --slots sapphirerapids-2c.avx2-t1,zen5-2c.avx2-t1 --out docs/results/train_memory.json

Each mode runs in its own process (so its peak RSS is its own): the first slot's table (read
whole, `load_feature_table`, or as a `StoreView`), split, and (pooled) joined by the other slots'
training sides (`evaluation.joint_training_side`, the stage's own call); then each preset of
--models trains on the result and is scored on the test side. Reports the peak RSS over the
baseline after the imports, for the data alone and with the fits, bytes per training row, and
the figures (the same rows read either way should give the same model). Needs the slots' feature
stores (`dvc repro featurize@<slot>`).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


MODES = ("own table", "own view", "pooled table", "pooled view")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(features_dir: Path, slots: list[str], pooled: bool, reader: str, models: list[str]) -> dict:
    """One mode, in this process."""
    from tensorcost.evaluation import ModelSpec, fit, joint_training_side, score, train_test
    from tensorcost.features import load_feature_table
    from tensorcost.features.store import StoreView
    from tensorcost.params import load_params

    def read(slot: str):
        return load_feature_table(features_dir, slot)[0] if reader == "table" else StoreView(features_dir, slot)

    p = load_params()
    base = _peak_mb()
    t0 = time.perf_counter()
    target = slots[0]
    table = read(target)
    train, test = train_test(table, p.split.strategy, p.split.model_dump())
    if pooled:
        tables = {target: table} | {s: read(s) for s in slots[1:]}
        train = joint_training_side(tables, target, p.split.strategy, p.split.model_dump(), train)
        del tables
    del table
    data_mb, data_s = _peak_mb() - base, time.perf_counter() - t0
    figures = {}
    for key in models:
        t1 = time.perf_counter()
        model, _ = fit(ModelSpec.preset(p, key), train)
        figures[key] = {**{k: round(v, 4) for k, v in score(model, test).items() if k in ("pca", "top1", "top5")}, "fit_s": round(time.perf_counter() - t1, 1)}
    fit_mb = _peak_mb() - base
    rows = len(train)
    return {"mode": ("pooled" if pooled else "own") + " " + reader, "train_rows": rows, "test_rows": len(test), "data_peak_mb": round(data_mb, 1),
            "with_fit_peak_mb": round(fit_mb, 1), "data_bytes_per_train_row": round(data_mb * 2**20 / rows),
            "with_fit_bytes_per_train_row": round(fit_mb * 2**20 / rows), "data_s": round(data_s, 2), "split": p.split.strategy, "figures": figures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features-dir", type=Path, default=Path("data/features"))
    ap.add_argument("--slots", required=True, help="comma-separated: the target first, then the slots pooled with it")
    ap.add_argument("--models", default="lightgbm_reg", help="comma-separated presets of params.yaml's models, trained in each mode")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # the child process's
    a = ap.parse_args()
    slots = a.slots.split(",")
    if a.mode:
        pool, reader = a.mode.split()
        print(json.dumps(measure(a.features_dir, slots, pool == "pooled", reader, a.models.split(","))))
        return
    if len(slots) < 2:
        ap.error("--slots: the target and at least one slot to pool with it")
    rows = []
    for mode in MODES:
        proc = subprocess.run([sys.executable, __file__, "--features-dir", str(a.features_dir), "--slots", a.slots, "--models", a.models, "--out", str(a.out), "--mode", mode],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"the {mode} run failed: {proc.stderr.strip()[-2000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(rows[-1])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"slots": slots, "runs": rows, "command": "python benchmarks/train_memory.py " + " ".join(sys.argv[1:])}, indent=1))


if __name__ == "__main__":
    main()
