"""Markdown tables from `tensorcost study` JSON files (issue 27 item 5): per platform, every split
x model with PCA / top-1 / top-5 (and TenSet's peak@5 where recorded), and per split whether a
model that is not a tree model may be served there (evaluation.serving_problems: at least
random's expected top-1, top-5 and PCA 0.5, and a PCA within 0.02 of the best tree model's).

    .venv/bin/python benchmarks/split_table.py docs/results/split-study/*.json > /tmp/tables.md

Random's row here is the `random` model's measured figures (one seeded draw); the serving rule
uses random's expected figures where the stages apply it, and these measured ones here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tensorcost.evaluation import ModelSpec, serving_problems, tree_model_keys
from tensorcost.params import load_params
from tensorcost.splits import ALL_STRATEGIES as SPLITS  # the table's row order


def load(paths: list[Path]) -> dict:
    """{slot: {split: {model: metrics}}} merged over files, model by model: a later file wins a
    model's cell (a re-run of some models updates only theirs)."""
    merged: dict = {}
    for p in paths:
        for slot, by_split in json.loads(p.read_text()).items():
            for split, by_model in by_split.items():
                merged.setdefault(slot, {}).setdefault(split, {}).update(by_model)
    return merged


def fmt(r: dict) -> str:
    cell = f"{r['pca']:.3f} / {r['top1']:.3f} / {r['top5']:.3f}"
    return cell + (f" ({r['peak5']:.3f})" if "peak5" in r else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--random", default="random", help="the study's random model key (the floor)")
    a = ap.parse_args()
    study = load(a.files)
    p = load_params()
    verdicts: dict = {}
    for slot, by_split in study.items():
        models = list(dict.fromkeys(m for row in by_split.values() for m in row))  # a model a file ran on some splits only: "-" elsewhere
        trees = tree_model_keys({m: ModelSpec.preset(p, m) for m in models if m != a.random})
        print(f"\n`{slot}`: PCA / top-1 / top-5 (TenSet's peak@5)\n")
        print("| split | " + " | ".join(models) + " |")
        print("| --- |" + " --- |" * len(models))
        for split in SPLITS:
            if split not in by_split:
                continue
            row = by_split[split]
            n_tasks = next(iter(row.values()))["n_tasks"]
            best = max((m for m in row if m != a.random), key=lambda m: sum(row[m][k] for k in ("pca", "top1", "top5")))
            print(f"| {split} ({n_tasks} tasks) | " + " | ".join("-" if m not in row else ("**" + fmt(row[m]) + "**") if m == best else fmt(row[m]) for m in models) + " |")
            floor = {k: row[a.random][k] for k in ("top1", "top5")} | {"pca": 0.5} if a.random in row else None
            why = serving_problems({m: r for m, r in row.items() if m != a.random}, trees, floor)
            for m, w in why.items():
                verdicts.setdefault(m, []).append((slot, split, w))
    print("\nWhere each model may be served (a split x platform cell it fails, and why):\n")
    for m, rows in verdicts.items():
        fails = [(s, sp, w) for s, sp, w in rows if w]
        print(f"- `{m}`: may be served on {len(rows) - len(fails)} of {len(rows)} split x platform cells"
              + ("" if not fails else "; not on: " + "; ".join(f"{s} {sp} ({w})" for s, sp, w in fails[:6])
                 + (f"; and {len(fails) - 6} more" if len(fails) > 6 else "")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
