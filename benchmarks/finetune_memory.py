"""What a LightGBM fine-tune holds (the transfer stage's warm start on k% of a new machine's
records): the k% read whole, as the stage did until the twenty-fifth session (LightGBM's own warm
start cannot score `lightgbm.Sequence` data), against a store view read a fragment at a time
(the initial scores ours, the new trees stacked after the source's: `stack_boosters`).

    .venv/bin/python benchmarks/finetune_memory.py --slot zen3-2c.avx2-t1 --source zen5-2c.avx2-t1 \
        --copies 1,4,16 --out docs/results/finetune_memory.json

The parent featurizes the slot's bundled records once and writes a feature store of `--copies`
copies of them under --work (task ids suffixed per copy: a machine with that many more tasks),
trains the source slot's `lightgbm_reg` preset on its bundled records and saves it. Each mode runs
in a fresh process: it loads the source, then fine-tunes it on the whole store (k = 100%), read
whole (`view.materialize()`, the former path) or as the view. Reports the peak anonymous RSS over
the child's after loading (anon_memory.py), bytes a row, the seconds, and how far the two modes' scores on
the first copy differ (the same trees up to 200,000 rows; past that LightGBM bins from a sample,
drawn differently from memory and from Sequences).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from anon_memory import PeakRSS, anon_rss_mb  # noqa: E402

MODES = ("whole", "view")


def _build(work: Path, slot: str, source: str, copies: int) -> tuple[Path, Path]:
    """The store of `copies` copies of the slot's records, and the saved source model."""
    from tensorcost.evaluation import ModelSpec, fit
    from tensorcost.features import FeatureTable, write_feature_store
    from tensorcost.params import load_params

    from common import bundled_feature_tables

    store, model_dir = work / f"store-{copies}", work / "source-model"
    tables = None
    if not (store / slot / "meta.json").exists():
        tables = bundled_feature_tables([slot, source])
        one = tables[slot]
        parts = []
        for c in range(copies):
            frame = one.frame.copy()
            frame["task_id"] = frame["task_id"].astype(str) + (f"#copy{c}" if c else "")
            parts.append(one.with_frame(frame))
        shutil.rmtree(store, ignore_errors=True)
        write_feature_store(FeatureTable.concat(parts, slot), store, slot)
    if not (model_dir / "metadata.json").exists():
        tables = tables or bundled_feature_tables([source])
        model, _ = fit(ModelSpec.preset(load_params(), "lightgbm_reg"), tables[source])
        model.save(model_dir)
    return store, model_dir


def measure(store: Path, slot: str, model_dir: Path, mode: str, first_rows: int) -> dict:
    """One mode, in this process."""
    from tensorcost.features.store import StoreView
    from tensorcost.models import load_model

    model = load_model(model_dir)
    view = StoreView(store, slot)
    rows = len(view)
    base = anon_rss_mb()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        model.fit(view.materialize(model.inputs) if mode == "whole" else view, warm_start=True)
    seconds = time.perf_counter() - t0
    peak = rss.peak - base
    scores = model.predict(view.take(np.arange(min(first_rows, rows))))
    return {"mode": mode, "rows": rows, "peak_mb": round(peak, 1), "bytes_per_row": round(peak * 2**20 / rows), "seconds": round(seconds, 2),
            "trees": model.booster.num_trees(), "scores": scores.tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1", help="the new machine: its bundled records are fine-tuned on")
    ap.add_argument("--source", default="zen5-2c.avx2-t1", help="the platform whose lightgbm_reg is fine-tuned")
    ap.add_argument("--copies", default="1,4")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tc-finetune-memory"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--child", nargs=3, metavar=("STORE", "MODE", "FIRST_ROWS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    model_dir = a.work / "source-model"
    if a.child:
        store, mode, first = a.child
        print(json.dumps(measure(Path(store), a.slot, model_dir, mode, int(first))))
        return
    runs = []
    for copies in [int(c) for c in a.copies.split(",")]:
        store, _ = _build(a.work, a.slot, a.source, copies)
        got = {}
        for mode in MODES:
            proc = subprocess.run([sys.executable, __file__, "--slot", a.slot, "--source", a.source, "--work", str(a.work), "--out", str(a.out),
                                   "--child", str(store), mode, "2000"], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"the {mode} run at {copies} copies failed: {proc.stderr.strip()[-2000:]}")
            got[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        diff = float(np.max(np.abs(np.asarray(got["whole"].pop("scores")) - np.asarray(got["view"].pop("scores")))))
        for mode in MODES:
            runs.append({"copies": copies, **got[mode], "max_score_difference": diff})
            print(runs[-1], flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"slot": a.slot, "source": a.source, "runs": runs, "command": "python benchmarks/finetune_memory.py " + " ".join(sys.argv[1:])},
                                indent=1) + "\n")
    lines = ["| copies | rows | read whole: peak MB, s | a fragment at a time: peak MB, s |", "| --- | --- | --- | --- |"]
    for copies in dict.fromkeys(r["copies"] for r in runs):
        w, v = (next(r for r in runs if r["copies"] == copies and r["mode"] == m) for m in MODES)
        lines.append(f"| {copies} | {w['rows']:,} | {w['peak_mb']:,.0f}, {w['seconds']} | {v['peak_mb']:,.0f}, {v['seconds']} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
