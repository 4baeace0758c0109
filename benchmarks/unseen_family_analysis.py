"""Why models rank programs of an unseen architecture family badly (issue 13): the input shift
between the families a model trains on and the family it is tested on, and what each model puts
first per held-out task.

    .venv/bin/python benchmarks/unseen_family_analysis.py --slot sapphirerapids-2c.avx2-t1 \
        --features-dir data/features --out reports/analysis/unseen_family.json

Reads one slot's feature table (the featurize stage's output) and params.yaml's `split` and
model presets; trains each model on the by_family training side and reports, per held-out task,
PCA, the rank the model gives the truly fastest program and the slowdown of the program it puts
first. The shift section lists the flat features whose test values fall outside the training
range most often (inputs the model never saw), and the primitive tokens the test side uses that
the training side never does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tensorcost.evaluation import ModelSpec, train_test
from tensorcost.features import load_feature_table
from tensorcost.metrics import ranking_report
from tensorcost.params import load_params


def feature_shift(train_flat: np.ndarray, test_flat: np.ndarray, names: list[str], top: int = 12) -> list[dict]:
    """Per flat feature: the share of test rows outside the training side's [p1, p99], and the
    shift of the mean in training standard deviations."""
    lo, hi = np.percentile(train_flat, 1, axis=0), np.percentile(train_flat, 99, axis=0)
    outside = ((test_flat < lo) | (test_flat > hi)).mean(axis=0)
    std = train_flat.std(axis=0)
    shift = np.abs(test_flat.mean(axis=0) - train_flat.mean(axis=0)) / np.where(std > 0, std, np.nan)
    order = np.argsort(-outside)[:top]
    return [{"feature": names[i], "test_outside_train_p1_p99": float(outside[i]), "mean_shift_in_train_std": None if np.isnan(shift[i]) else float(shift[i])} for i in order]


def token_shift(train, test) -> dict:
    """Primitive kinds (a compact token's first field) used by test programs but by no training program."""
    tr, te = set(train.token_rows[:, 0].astype(int).tolist()), set(test.token_rows[:, 0].astype(int).tolist())
    return {"train_kinds": len(tr), "test_kinds": len(te), "test_only_kinds": sorted(te - tr)}


def mask_features(table, names: list[str], patterns: list[str]) -> list[str]:
    """Zero the flat features named by `patterns` (exact names, or prefixes ending in *) in place;
    returns the names masked. An unknown name is an error, not a silent no-op."""
    chosen = []
    for pat in patterns:
        hit = [n for n in names if (n.startswith(pat[:-1]) if pat.endswith("*") else n == pat)]
        if not hit:
            raise SystemExit(f"--mask-features: {pat!r} names no flat feature (e.g. {', '.join(names[:4])})")
        chosen += hit
    idx = [names.index(n) for n in dict.fromkeys(chosen)]
    if idx:
        flat = table.flat.copy()
        flat[:, idx] = 0.0
        table.flat = flat
    return list(dict.fromkeys(chosen))


def per_task(test, scores: np.ndarray) -> list[dict]:
    rows = []
    df = test.frame.assign(score=scores)
    for task, g in df.groupby("task_id"):
        lat = g["latency_s"].to_numpy()
        s = g["score"].to_numpy()
        best = int(np.argmin(lat))
        rank_of_best = int((s > s[best]).sum()) + 1
        rows.append({"task_id": task, "networks": json.loads(g["networks"].iloc[0]) if isinstance(g["networks"].iloc[0], str) else g["networks"].iloc[0],
                     "programs": len(g), "rank_of_fastest": rank_of_best, "top1_slowdown": float(lat[int(np.argmax(s))] / lat[best]),
                     "pca": ranking_report([task] * len(g), s, lat, {task: 1.0}).to_dict()["pca"]})
    return rows


def ceiling(p, keys: list[str], train, test) -> dict:
    """Each model scored on half of every held-out task's programs (B), trained once without the
    held-out families (unseen) and once with the other half (A) added (seen): the gap between
    the two is what not having seen a family costs; `seen` bounds what the model and features
    reach on these tasks at all."""
    from common import seen_halves
    from tensorcost.features import FeatureTable

    a, b = seen_halves(test, p.split.model_dump())
    seen_train = FeatureTable.concat([train, a], train.slot)
    out = {}
    for key in keys:
        spec = ModelSpec.preset(p, key)
        unseen = spec.train_and_score(train, b).metrics
        seen = spec.train_and_score(seen_train, b).metrics
        out[key] = {"unseen": unseen, "seen": seen}
        print(f"{key} on half of each held-out task ({len(b)} programs): unseen PCA {unseen['pca']:.3f} top-1 {unseen['top1']:.3f} top-5 {unseen['top5']:.3f}; "
              f"seen (the other half trained on) PCA {seen['pca']:.3f} top-1 {seen['top1']:.3f} top-5 {seen['top5']:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slot", default="sapphirerapids-2c.avx2-t1")
    ap.add_argument("--features-dir", default="data/features")
    ap.add_argument("--records", default=None, help="featurize this records file (a bundled target's parquet) with the current code instead of reading --features-dir")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", default="attention,lightgbm_reg,random")
    ap.add_argument("--out", default="reports/analysis/unseen_family.json")
    ap.add_argument("--ceiling", action="store_true", help="also: each model with the held-out families seen (half of each test task's programs added to training), "
                    "both scored on the other half: what the model reaches on these very tasks once it has seen them")
    ap.add_argument("--mask-features", default="", help="comma-separated flat feature names (or name prefixes ending in *) set to 0 on both sides: an ablation")
    args = ap.parse_args()

    p = load_params(args.params)
    if args.records:  # the current feature code on raw records: a feature ablation needs no pipeline run
        import tempfile

        import pyarrow.parquet as pq

        from tensorcost.features import featurize_records, write_feature_store
        from tensorcost.hardware.catalog import HARDWARE_FEATURE_NAMES, catalog_target

        records = pq.read_table(args.records)
        target = str(records.column("target")[0])
        args.features_dir = tempfile.mkdtemp(prefix="tc-unseen-")
        table = featurize_records(records, catalog_target(target).features(), HARDWARE_FEATURE_NAMES, slot=args.slot)
        write_feature_store(table, Path(args.features_dir), args.slot)
    table, _ = load_feature_table(Path(args.features_dir), args.slot)
    names = table.feature_names
    masked = mask_features(table, names, [m.strip() for m in args.mask_features.split(",") if m.strip()])
    train, test = train_test(table, "by_family", p.split.model_dump())
    report = {"slot": args.slot, "train_rows": len(train), "test_rows": len(test), "masked_features": masked,
              "test_networks": sorted({n for v in test.frame["networks"] for n in (json.loads(v) if isinstance(v, str) else v)}),
              "feature_shift": feature_shift(train.flat, test.flat, names),
              "token_shift": token_shift(train, test),
              "token_count": {"train_median": float(train.frame["n_tokens"].median()), "test_median": float(test.frame["n_tokens"].median())},
              "models": {}}
    for key in [k.strip() for k in args.models.split(",") if k.strip()]:
        result = ModelSpec.preset(p, key).train_and_score(train, test)
        tasks = per_task(test, result.model.predict(test))
        report["models"][key] = {"metrics": result.metrics, "median_top1_slowdown": float(np.median([t["top1_slowdown"] for t in tasks])),
                                 "median_rank_of_fastest": float(np.median([t["rank_of_fastest"] for t in tasks])), "tasks": tasks}
        print(f"{key}: PCA {result.metrics['pca']:.3f} top-1 {result.metrics['top1']:.3f} top-5 {result.metrics['top5']:.3f}; "
              f"median slowdown of its first pick {report['models'][key]['median_top1_slowdown']:.2f}x, median rank of the fastest program {report['models'][key]['median_rank_of_fastest']:.0f}")
    if args.ceiling:
        report["ceiling"] = ceiling(p, [k.strip() for k in args.models.split(",") if k.strip()], train, test)
    print("most shifted flat features:", ", ".join(f"{r['feature']} ({r['test_outside_train_p1_p99']:.0%} outside)" for r in report["feature_shift"][:8]))
    print("token kinds only in test:", report["token_shift"]["test_only_kinds"], "; tokens per program, median train/test:",
          report["token_count"]["train_median"], report["token_count"]["test_median"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
