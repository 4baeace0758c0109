"""One function per DVC stage: read params, call the rooms, write the declared outputs.

No logic a test would need lives only here; these are the thin glue `dvc.yaml` runs through
`tensorcost stage <name>`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

from .params_io import git_commit, load_params, md5_file

log = logging.getLogger("tensorcost")

PROGRAMS_DIR = Path("data/programs")
RAW_DIR = Path("data/raw")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")


def _echo(msg: str) -> None:
    print(f"[tensorcost] {msg}", file=sys.stderr, flush=True)


def _measure_config(p: dict):
    from .collect import MeasureConfig

    return MeasureConfig(**p["measure"])


def sample() -> None:
    """Extract tasks from the zoo networks and sample programs once, for every target."""
    from tqdm import tqdm

    from . import collect, hardware
    from .tvm_support import tvm_target, tvm_version

    p = load_params()
    sp = p["sample"]
    ref = hardware.get_target(sp.get("reference_target") or p["targets"][0])
    for t in p["targets"]:
        hardware.get_target(t)  # refuse an invalid target before spending minutes
    target = tvm_target(ref)
    tasks = collect.extract_tasks(p["zoo"]["networks"], target)
    tasks = [t for t in tasks if t.flops >= float(sp.get("min_flops", 0))][: int(sp["max_tasks"])]
    programs = {}
    for task in tqdm(tasks, desc="sample programs", unit="task"):
        programs[task.task_id] = collect.sample_programs(task, target, int(sp["programs_per_task"]), int(sp["seed"]))
    meta = {"reference_target": ref.target_id, "tvm_version": tvm_version(), "networks": p["zoo"]["networks"]}
    collect.save_task_set(tasks, programs, PROGRAMS_DIR, meta)
    _echo(f"sampled {sum(map(len, programs.values()))} programs for {len(tasks)} tasks -> {PROGRAMS_DIR}")


def collect_target(target_id: str) -> None:
    """Measure the sampled programs on one target; write records, hardware.json and a MetaSchedule DB."""
    from . import collect, hardware, records

    p = load_params()
    hw = hardware.get_target(target_id)
    out = RAW_DIR / target_id
    tasks, programs, _ = collect.load_task_set(PROGRAMS_DIR)
    counts = collect.measure_task_set(tasks, programs, hw, out, _measure_config(p))
    table = records.read_records(out / "parts")
    n_db = collect.write_metaschedule_database(tasks, table, hw, out / "database")
    (out / "hardware.json").write_text(json.dumps(hw.to_dict(), indent=1))
    summary = counts | {"records": table.num_rows, "database_records": n_db}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _echo(f"{target_id}: {summary}")


def validate_target(target_id: str) -> None:
    from . import records, validation

    table = records.read_records(RAW_DIR / target_id / "parts")
    summary = validation.validate_records(table.to_pandas(), target_id, REPORTS_DIR / "validation" / target_id / "data_docs")
    validation.write_summary(summary, REPORTS_DIR / "validation" / f"{target_id}.json")
    print(summary.readable())
    if not summary.success:
        raise SystemExit(f"validation failed for {target_id}; see reports/validation/{target_id}/data_docs/index.html")


def featurize_target(target_id: str) -> None:
    from . import records
    from .features import FEATURE_SCHEMA_VERSION, featurize_table
    from .hardware import HARDWARE_FEATURE_NAMES, HardwareTarget

    raw = RAW_DIR / target_id
    hw = HardwareTarget(**json.loads((raw / "hardware.json").read_text()))
    table = records.read_records(raw / "parts")
    df = featurize_table(table, hw.features(), HARDWARE_FEATURE_NAMES)
    FEATURES_DIR.mkdir(parents=True, exist_ok=True)
    df.to_parquet(FEATURES_DIR / f"{target_id}.parquet", index=False)
    meta = {"feature_schema": FEATURE_SCHEMA_VERSION, "feature_names": df.attrs["feature_names"], "valid_records": len(df), "dropped_error_records": table.num_rows - len(df)}
    (FEATURES_DIR / f"{target_id}.json").write_text(json.dumps(meta, indent=1))
    _echo(f"{target_id}: {len(df)} feature rows ({meta['dropped_error_records']} error records dropped)")


def _load_features(target_id: str):
    import pandas as pd

    df = pd.read_parquet(FEATURES_DIR / f"{target_id}.parquet")
    meta = json.loads((FEATURES_DIR / f"{target_id}.json").read_text())
    return df, meta


def _split(df, p: dict) -> np.ndarray:
    from .splits import assign_test

    s = p["split"]
    return assign_test(s["strategy"], df["task_id"].tolist(), df["program_id"].tolist(), float(s["test_fraction"]), int(s["seed"]))


def _task_weights(df) -> dict:
    return dict(zip(df["task_id"], df["task_weight"].astype(float)))


def train_target(target_id: str) -> None:
    from . import registry
    from .metrics import ranking_report
    from .models.lightgbm_model import LightGBMCostModel

    p = load_params()
    df, meta = _load_features(target_id)
    test = _split(df, p)
    x = np.stack(df["flat"].to_numpy())
    lp = dict(p["train"]["lightgbm"])
    objective = lp.pop("objective", "lambdarank")
    model = LightGBMCostModel.create(target_id, meta["feature_schema"], meta["feature_names"], objective=objective, **lp)
    train = ~test
    model.fit(x[train], df["label"].to_numpy()[train], df["task_id"].to_numpy()[train])
    scores = model.predict(x[test])
    tdf = df[test]
    report = ranking_report(tdf["task_id"].tolist(), scores, tdf["latency_s"].to_numpy(), _task_weights(df))
    out = MODELS_DIR / target_id
    model.save(out)
    validation = json.loads((REPORTS_DIR / "validation" / f"{target_id}.json").read_text())
    feats_file = FEATURES_DIR / f"{target_id}.parquet"
    tags = {
        "target": target_id,
        "model_family": "lightgbm",
        "objective": objective,
        "feature_schema": meta["feature_schema"],
        "split": p["split"]["strategy"],
        "train_data_hash": md5_file(feats_file),
        # Same file, other rows: the split is deterministic, so (hash, split params) names the eval set.
        "eval_data_hash": f"{md5_file(feats_file)}:{p['split']['strategy']}:{p['split']['test_fraction']}:{p['split']['seed']}",
        "git_commit": git_commit(),
        "validation": "passed" if validation["success"] else "failed",
        **{f"metric.{k}": v for k, v in report.to_dict().items()},
    }
    version = registry.log_and_register(
        out, target_id, experiment=p["registry"]["experiment"], run_name=f"train-{target_id}",
        params={"objective": objective, **lp, **{f"split.{k}": v for k, v in p["split"].items()}},
        metrics=report.to_dict(), tags=tags,
    )
    info = {"registered_model": registry.model_name(target_id), "version": version, "alias": registry.CANDIDATE, "metrics": report.to_dict(), "train_records": int(train.sum()), "test_records": int(test.sum())}
    (REPORTS_DIR / "train").mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / "train" / f"{target_id}.json").write_text(json.dumps(info, indent=1))
    _echo(f"{target_id}: registered {info['registered_model']} version {version} as '{registry.CANDIDATE}': {report.to_dict()}")


def evaluate() -> None:
    """Held-out PCA/top-k per target (DVC metrics) and a ranking plot of one task per target."""
    import csv

    from .metrics import ranking_report
    from .models import load_model
    from .plots import ranking_scatter

    p = load_params()
    strategy = p["split"]["strategy"]
    metrics: dict = {}
    rows = []
    rng = np.random.default_rng(int(p["split"]["seed"]))
    for target_id in p["targets"]:
        df, meta = _load_features(target_id)
        test = _split(df, p)
        tdf = df[test].reset_index(drop=True)
        model = load_model(MODELS_DIR / target_id, expected_feature_schema=meta["feature_schema"])
        scores = model.predict(np.stack(tdf["flat"].to_numpy()))
        weights = _task_weights(df)
        metrics[target_id] = {
            strategy: {
                f"lightgbm_{'rank' if model.metadata.objective == 'lambdarank' else 'reg'}": ranking_report(tdf["task_id"].tolist(), scores, tdf["latency_s"].to_numpy(), weights).to_dict(),
                "random": ranking_report(tdf["task_id"].tolist(), rng.random(len(tdf)), tdf["latency_s"].to_numpy(), weights).to_dict(),
            }
        }
        # Plot the test task with the most programs.
        task = tdf["task_id"].value_counts().idxmax()
        m = (tdf["task_id"] == task).to_numpy()
        meas_rank = (-tdf["label"].to_numpy()[m]).argsort().argsort()
        pred_rank = (-scores[m]).argsort().argsort()
        for mr, pr in zip(meas_rank, pred_rank):
            rows.append({"target": target_id, "task_id": task, "measured_rank": int(mr), "predicted_rank": int(pr)})
        ranking_scatter(meas_rank, pred_rank, f"{target_id} task {task}", REPORTS_DIR / "figures" / f"ranking_{target_id}.png")
    (REPORTS_DIR / "metrics").mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / "metrics" / "evaluate.json").write_text(json.dumps(metrics, indent=1))
    (REPORTS_DIR / "plots").mkdir(parents=True, exist_ok=True)
    with open(REPORTS_DIR / "plots" / "ranking.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["target", "task_id", "measured_rank", "predicted_rank"])
        w.writeheader()
        w.writerows(rows)
    _echo(json.dumps(metrics, indent=1))


def tune() -> None:
    """Tune the network with the registry model (by alias) and with TVM's XGB model, same budget."""
    from . import hardware, registry
    from .features import FEATURE_SCHEMA_VERSION
    from .tuning import TuneConfig, make_registry_cost_model, tune_network, untuned_network_latency_ms

    p = load_params()
    tp = p["tune"]
    hw = hardware.get_target(tp["target"])
    model, resolved = registry.load_by_alias(hw.target_id, tp["alias"], fallback=registry.CANDIDATE, expected_feature_schema=FEATURE_SCHEMA_VERSION)
    _echo(resolved.message)
    cfg = TuneConfig(
        network=tp["network"], max_trials_global=int(tp["max_trials_global"]), num_trials_per_iter=int(tp["num_trials_per_iter"]),
        max_tasks=int(tp["max_tasks"]), seed=int(tp["seed"]), population_size=int(tp["population_size"]), timing_number=int(tp["timing_number"]), timing_repeat=int(tp["timing_repeat"]),
    )
    mcfg = _measure_config(p)
    work = Path(".tensorcost/tune") / hw.target_id
    ours = make_registry_cost_model(model, hw)
    report = {"target": hw.target_id, "network": cfg.network, "budget": {"max_trials_global": cfg.max_trials_global, "num_trials_per_iter": cfg.num_trials_per_iter, "max_tasks": cfg.max_tasks}, "cost_models": {}}
    _echo(f"tuning {cfg.network} on {hw.target_id} with {resolved.name} v{resolved.version}")
    r = tune_network(hw, cfg, ours, work / "tensorcost", mcfg)
    r["model"] = {"name": resolved.name, "version": resolved.version, "alias_requested": tp["alias"], "alias_used": resolved.alias}
    r["predict_candidates_per_s"] = ours.n_predicted / ours.predict_seconds if ours.predict_seconds else None
    report["cost_models"]["tensorcost"] = r
    _echo("tuning with TVM's XGBoost cost model (same budget)")
    report["cost_models"]["tvm_xgb"] = tune_network(hw, cfg, "xgb", work / "tvm_xgb", mcfg)
    report["untuned_network_latency_ms"] = untuned_network_latency_ms(hw, cfg)
    a, b = report["cost_models"]["tensorcost"], report["cost_models"]["tvm_xgb"]
    report["summary"] = {
        "untuned_network_ms": report["untuned_network_latency_ms"]["median"],
        "tensorcost_network_ms": a["network_latency_ms"]["median"], "tvm_xgb_network_ms": b["network_latency_ms"]["median"],
        "tensorcost_tuned_tasks_us": a["tuned_tasks_weighted_latency_us"], "tvm_xgb_tuned_tasks_us": b["tuned_tasks_weighted_latency_us"],
        "tensorcost_tuning_s": a["tuning_wall_s"], "tvm_xgb_tuning_s": b["tuning_wall_s"],
        "speedup_vs_tvm_xgb": b["network_latency_ms"]["median"] / a["network_latency_ms"]["median"],
    }
    out = REPORTS_DIR / "tune" / f"{hw.target_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    _echo(json.dumps(report["summary"], indent=1))
