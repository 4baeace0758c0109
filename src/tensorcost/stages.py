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
BUNDLED_DIR = Path("data/bundled")
RECORDS_DIR = Path("data/records")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")


def _json(obj) -> str:
    """JSON with NaN (e.g. PCA of a task set without comparable pairs) written as null."""
    import math

    def clean(o):
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), indent=1, allow_nan=False)


def _echo(msg: str) -> None:
    print(f"[tensorcost] {msg}", file=sys.stderr, flush=True)


def _measure_config(p: dict):
    from .collect import MeasureConfig

    return MeasureConfig(**p["measure"])


def _task_set_kind(meta: dict) -> str:
    """The kind of target ("cpu" or "gpu") a task set's programs were sampled for (task sets
    written before GPU targets existed carry only the reference target id, a CPU one)."""
    if meta.get("reference_kind"):
        return str(meta["reference_kind"])
    return "gpu" if str(meta.get("reference_target", "")).startswith("cuda-") else "cpu"


def sample() -> None:
    """Extract tasks and sample programs once, for every target of one kind.

    Programs come from the reference target's design space (`sample.reference_target`, default
    the first target): CPU and GPU programs differ (thread binding, shared memory), so a GPU
    collection samples its own task set, in its own work dir, with a GPU reference target.
    `sample.tasks_from` (a directory holding a tasks.json, e.g. data/bundled) takes the tasks
    from an existing task set instead of extracting them from the zoo: same workloads, same
    task ids, and no torch needed. `sample.workers` samples that many tasks in parallel."""
    from tqdm import tqdm

    from . import collect, hardware
    from .tvm_support import tvm_target, tvm_version

    p = load_params()
    sp = p["sample"]
    # Sampling and building need no device: a catalog GPU is a valid reference without a GPU.
    ref = hardware.codegen_target(sp.get("reference_target") or p["targets"][0])
    for t in p["targets"]:
        hw = hardware.codegen_target(t)  # refuse an invalid target before spending minutes
        if hw.kind != ref.kind:
            raise SystemExit(
                f"target {t} ({hw.kind}) cannot measure programs sampled for {ref.target_id} ({ref.kind}): "
                "sample a separate task set for each kind (see docs/dataset-params-cuda.yaml)"
            )
    target = tvm_target(ref)
    tasks_from = sp.get("tasks_from")
    if tasks_from:
        tasks = collect.load_task_set(Path(tasks_from))[0]
        networks = sorted({n for t in tasks for n in t.networks})
    else:
        tasks = collect.extract_tasks(p["zoo"]["networks"], target)
        networks = p["zoo"]["networks"]
    tasks = collect.select_tasks(tasks, int(sp["max_tasks"]), float(sp.get("min_flops", 0)), float(sp.get("max_flops", float("inf"))))
    with tqdm(total=len(tasks), desc=f"sample programs ({ref.target_id})", unit="task") as bar:
        programs = collect.sample_task_set(
            tasks, target, int(sp["programs_per_task"]), int(sp["seed"]), int(sp.get("workers", 1)), bar.update
        )
    meta = {"reference_target": ref.target_id, "reference_kind": ref.kind, "tvm_version": tvm_version(), "networks": networks}
    if tasks_from:
        meta["tasks_from"] = str(tasks_from)
    collect.save_task_set(tasks, programs, PROGRAMS_DIR, meta)
    _echo(f"sampled {sum(map(len, programs.values()))} programs for {len(tasks)} tasks -> {PROGRAMS_DIR}")


def collect_target(target_id: str, task_limit: int | None = None) -> None:
    """Measure the sampled programs on one target; write records, hardware.json and a MetaSchedule DB.

    `task_limit` measures only the first N tasks (to interleave targets task by task in long
    collections); the database and summary are written once every task is measured."""
    from . import collect, hardware, records

    p = load_params()
    out = RAW_DIR / target_id
    tasks, programs, meta = collect.load_task_set(PROGRAMS_DIR)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    if not any(programs.values()):
        (out / "summary.json").write_text(json.dumps({"tasks": len(tasks), "measured": 0, "records": 0}, indent=1))
        _echo(f"{target_id}: no programs to measure (sample.programs_per_task is 0)")
        return
    hw = hardware.get_target(target_id)
    if _task_set_kind(meta) != hw.kind:
        raise SystemExit(
            f"{target_id} is a {hw.kind} target but {PROGRAMS_DIR} holds programs sampled for "
            f"{meta.get('reference_target')} ({_task_set_kind(meta)}): sample a task set for this kind first"
        )
    (out / "hardware.json").write_text(json.dumps(hw.to_dict(), indent=1))
    counts = collect.measure_task_set(tasks[:task_limit], programs, hw, out, _measure_config(p))
    if task_limit is not None and task_limit < len(tasks):
        _echo(f"{target_id}: {counts} (first {task_limit} of {len(tasks)} tasks)")
        return
    table = records.read_records(out / "parts")
    n_db = collect.write_metaschedule_database(tasks, table, hw, out / "database")
    summary = counts | {"records": table.num_rows, "database_records": n_db}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _echo(f"{target_id}: {summary}")


def merge_records_target(target_id: str, bundled_only: bool = False) -> None:
    """The target's training records: the bundled dataset (git) plus fresh measurements (DVC).

    A program measured in both keeps its bundled record (labels are normalised per task, and
    mixing measurement sessions within a task would mix their drift). `bundled_only`: a target
    this machine cannot measure (the bundled GPU): its bundled records, whatever `records.bundled`.
    """
    import pyarrow as pa

    from . import records

    p = load_params()
    sources, hardware_json = [], None
    bundled = BUNDLED_DIR / f"records-{target_id}.parquet"
    if bundled_only and not bundled.exists():
        raise SystemExit(f"{target_id}: a bundled-only target needs {bundled}")
    use_bundled = (bundled_only or bool(p.get("records", {}).get("bundled", True))) and bundled.exists()
    if use_bundled:
        sources.append(records.read_records(bundled))
        hardware_json = (BUNDLED_DIR / f"hardware-{target_id}.json").read_text()
    fresh_parts = RAW_DIR / target_id / "parts"
    if not bundled_only and fresh_parts.exists() and any(fresh_parts.glob("*.parquet")):
        sources.append(records.read_records(fresh_parts))
        hardware_json = hardware_json or (RAW_DIR / target_id / "hardware.json").read_text()
    if not sources:
        raise SystemExit(f"{target_id}: no records: neither {bundled} nor fresh measurements under {fresh_parts}")
    table = pa.concat_tables(sources)
    ids = table.column("record_id").to_pylist()
    seen, keep = set(), []
    for rid in ids:
        keep.append(rid not in seen)
        seen.add(rid)
    merged = table.filter(pa.array(keep))
    records.write_records(merged, RECORDS_DIR / f"{target_id}.parquet")
    (RECORDS_DIR / f"{target_id}.hardware.json").write_text(hardware_json)
    n_bundled = sources[0].num_rows if use_bundled else 0
    _echo(f"{target_id}: {merged.num_rows} records ({n_bundled} bundled, {len(ids) - merged.num_rows} duplicates dropped)")


def validate_target(target_id: str) -> None:
    from . import records, validation

    table = records.read_records(RECORDS_DIR / f"{target_id}.parquet")
    summary = validation.validate_records(table.to_pandas(), target_id, REPORTS_DIR / "validation" / target_id / "data_docs")
    validation.write_summary(summary, REPORTS_DIR / "validation" / f"{target_id}.json")
    print(summary.readable())
    if not summary.success:
        raise SystemExit(f"validation failed for {target_id}; see reports/validation/{target_id}/data_docs/index.html")


def featurize_target(target_id: str) -> None:
    from . import records
    from .features import FEATURE_SCHEMA_VERSION, featurize_table
    from .hardware import HARDWARE_FEATURE_NAMES, HardwareTarget

    hw = HardwareTarget(**json.loads((RECORDS_DIR / f"{target_id}.hardware.json").read_text()))
    table = records.read_records(RECORDS_DIR / f"{target_id}.parquet")
    df = featurize_table(table, hw.features(), HARDWARE_FEATURE_NAMES)
    FEATURES_DIR.mkdir(parents=True, exist_ok=True)
    df.to_parquet(FEATURES_DIR / f"{target_id}.parquet", index=False)
    meta = {"feature_schema": FEATURE_SCHEMA_VERSION, "feature_names": df.attrs["feature_names"], "valid_records": len(df), "dropped_error_records": table.num_rows - len(df)}
    (FEATURES_DIR / f"{target_id}.json").write_text(json.dumps(meta, indent=1))
    _echo(f"{target_id}: {len(df)} feature rows ({meta['dropped_error_records']} error records dropped)")


def ms_features_target(target_id: str) -> None:
    """MetaSchedule PerStoreFeature vectors of every valid record (inputs of TVM's XGB peer)."""
    import pandas as pd
    from tqdm import tqdm

    from . import collect
    from .hardware import HardwareTarget
    from .models.tvm_xgb import extract_ms_features, pack_features
    from .tvm_support import tvm_target

    df = pd.read_parquet(RECORDS_DIR / f"{target_id}.parquet", columns=["record_id", "task_id", "trace", "error_no"])
    df = df[df["error_no"] == 0]
    tasks = collect.load_tasks([BUNDLED_DIR, PROGRAMS_DIR])
    missing = sorted(set(df["task_id"]) - set(tasks))
    if missing:
        raise SystemExit(f"{target_id}: no workload for tasks {missing[:5]}... in {BUNDLED_DIR}/tasks.json or {PROGRAMS_DIR}/tasks.json")
    hw = HardwareTarget(**json.loads((RECORDS_DIR / f"{target_id}.hardware.json").read_text()))
    with tqdm(total=len(df), desc=f"MetaSchedule features {target_id}", unit="rec") as bar:
        mats = extract_ms_features(tasks, list(zip(df["task_id"], df["trace"])), tvm_target(hw), bar.update)
    counts, flat = pack_features(mats)
    pd.DataFrame({"record_id": df["record_id"].to_numpy(), "n_stores": counts}).to_parquet(FEATURES_DIR / f"{target_id}.ms_index.parquet", index=False)
    np.save(FEATURES_DIR / f"{target_id}.ms_rows.npy", flat)
    _echo(f"{target_id}: {len(df)} records, {len(flat)} store rows")


def _load_features(target_id: str):
    import pandas as pd

    df = pd.read_parquet(FEATURES_DIR / f"{target_id}.parquet")
    meta = json.loads((FEATURES_DIR / f"{target_id}.json").read_text())
    return df, meta


def _split(df, p: dict, target_id: str) -> np.ndarray:
    from .evaluation import TargetData, split_mask

    strategy = p["split"]["strategy"]
    if strategy == "by_hardware":
        raise SystemExit("split.strategy by_hardware holds out a whole target: it is for the evaluate/transfer studies, not for train")
    return split_mask(strategy, TargetData(target_id, df), p["split"])


def _task_weights(df) -> dict:
    return dict(zip(df["task_id"], df["task_weight"].astype(float)))


def _version_tags(target_id: str, family: str, objective: str, feature_schema: str, p: dict, report) -> dict:
    """The tags every registered version carries (the promotion gates read them)."""
    validation = json.loads((REPORTS_DIR / "validation" / f"{target_id}.json").read_text())
    data_hash = md5_file(FEATURES_DIR / f"{target_id}.parquet")
    sp = p["split"]
    return {
        "target": target_id,
        "model_family": family,
        "objective": objective,
        "feature_schema": feature_schema,
        "split": sp["strategy"],
        "train_data_hash": data_hash,
        # Same file, other rows: the split is deterministic, so (hash, split params) names the eval set.
        "eval_data_hash": f"{data_hash}:{sp['strategy']}:{sp['test_fraction']}:{sp['seed']}",
        "git_commit": git_commit(),
        "validation": "passed" if validation["success"] else "failed",
        **{f"metric.{k}": v for k, v in report.to_dict().items()},
    }


def train_target(target_id: str) -> None:
    from . import registry
    from .metrics import ranking_report
    from .models.lightgbm_model import LightGBMCostModel

    p = load_params()
    df, meta = _load_features(target_id)
    test = _split(df, p, target_id)
    x = np.stack(df["flat"].to_numpy())
    lp = dict(p["train"]["lightgbm"])
    objective = lp.pop("objective", "lambdarank")
    model = LightGBMCostModel.create(target_id, meta["feature_schema"], meta["feature_names"], objective=objective, **lp)
    train = ~test
    y, g = df["label"].to_numpy(), df["task_id"].to_numpy()
    curves = model.fit(x[train], y[train], g[train], valid=(x[test], y[test], g[test]))
    scores = model.predict(x[test])
    tdf = df[test]
    report = ranking_report(tdf["task_id"].tolist(), scores, tdf["latency_s"].to_numpy(), _task_weights(df))
    out = MODELS_DIR / target_id
    model.save(out)
    tags = _version_tags(target_id, "lightgbm", objective, meta["feature_schema"], p, report)
    version = registry.log_and_register(
        out, target_id, experiment=p["registry"]["experiment"], run_name=f"train-{target_id}",
        params={"objective": objective, **lp, **{f"split.{k}": v for k, v in p["split"].items()}},
        metrics=report.to_dict(), tags=tags, curves=curves,
    )
    info = {"registered_model": registry.model_name(target_id), "version": version, "alias": registry.CANDIDATE, "metrics": report.to_dict(), "train_records": int(train.sum()), "test_records": int(test.sum())}
    (REPORTS_DIR / "train").mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / "train" / f"{target_id}.json").write_text(_json(info))
    _echo(f"{target_id}: registered {info['registered_model']} version {version} as '{registry.CANDIDATE}': {report.to_dict()}")


def train_attention_target(target_id: str) -> None:
    """The cross-feature attention model on the target's training split; registered as a new
    version of tensorcost-<target> (alias `candidate`)."""
    from . import registry
    from .evaluation import attention_batch
    from .metrics import ranking_report
    from .models.attention import AttentionCostModel

    p = load_params()
    df, meta = _load_features(target_id)
    test = _split(df, p, target_id)
    model = AttentionCostModel.create(target_id, meta["feature_schema"], **p["attention"])
    tr, te = df[~test], df[test]
    losses = model.fit(attention_batch(tr, model.cfg.max_len), tr["label"].to_numpy(), tr["task_id"].to_numpy(), log=lambda m: _echo(f"{target_id} attention {m}"))
    scores = model.predict(attention_batch(te, model.cfg.max_len))
    report = ranking_report(te["task_id"].tolist(), scores, te["latency_s"].to_numpy(), _task_weights(df))
    out = MODELS_DIR / f"attention-{target_id}"
    model.save(out)
    tags = _version_tags(target_id, "attention", model.cfg.loss, meta["feature_schema"], p, report)
    version = registry.log_and_register(
        out, target_id, experiment=p["registry"]["experiment"], run_name=f"train-attention-{target_id}",
        params={f"attention.{k}": v for k, v in p["attention"].items()}, metrics=report.to_dict(), tags=tags,
        curves={f"train_{model.cfg.loss}_loss": losses},
    )
    info = {"registered_model": registry.model_name(target_id), "version": version, "alias": registry.CANDIDATE, "model_family": "attention", "metrics": report.to_dict(), "epoch_losses": losses}
    (REPORTS_DIR / "train").mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / "train" / f"attention-{target_id}.json").write_text(_json(info))
    _echo(f"{target_id}: registered attention model as version {version}: {report.to_dict()}")


def _most_distant_pair(targets: list[str]) -> tuple[str, str, dict]:
    from . import dataset, records

    tables = {t: records.read_records(RECORDS_DIR / f"{t}.parquet") for t in targets}
    agreement = dataset.cross_target_agreement(tables)
    pair = min(agreement, key=lambda k: agreement[k]["spearman_median"])
    a, b = pair.split("|")
    return a, b, agreement


def transfer() -> None:
    """Learning curves of transfer from a source target (model pulled from the registry by
    alias) to held-out targets, against from-scratch and tree models on the same data: the most
    distant pair of measured targets, and every bundled-only target in `transfer.also_targets`
    (the GPU: real heterogeneity, programs from another design space)."""
    from . import registry
    from .features import FEATURE_SCHEMA_VERSION

    p = load_params()
    tp = p["transfer"]
    a, b, agreement = _most_distant_pair(p["targets"])
    source = tp["source"] if tp["source"] != "auto" else a
    primary = tp["target"] if tp["target"] != "auto" else b
    model, resolved = registry.load_by_alias(source, tp["alias"], fallback=registry.CANDIDATE, expected_feature_schema=FEATURE_SCHEMA_VERSION)
    _echo(resolved.message)
    if model.metadata.family != "attention":
        raise SystemExit(f"transfer needs an attention model at {resolved.name}@{resolved.alias}; version {resolved.version} is {model.metadata.family!r}")
    targets = [primary] + [t for t in tp.get("also_targets") or [] if t != primary]
    result, studies = {}, []
    for i, target in enumerate(targets):
        curves, study = _transfer_to(p, source, target, model, resolved, plots=[REPORTS_DIR / "transfer" / "curves" / f"{target}.png"] + ([REPORTS_DIR / "transfer" / "learning_curve.png"] if i == 0 else []))
        study["pair_agreement"] = agreement.get("|".join(sorted([source, target])))
        result[target] = curves
        studies.append(study)
    (REPORTS_DIR / "metrics").mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / "metrics" / "transfer.json").write_text(_json(result))
    (REPORTS_DIR / "transfer" / "study.json").write_text(_json({"source": source, "source_model": {"name": resolved.name, "version": resolved.version, "alias": resolved.alias},
                                                                 "studies": studies, "all_pairs": agreement}))
    _echo(json.dumps(result, indent=1)[:3000])


def _transfer_to(p: dict, source: str, target: str, model, resolved, plots: list[Path]) -> tuple[dict, dict]:
    """One transfer study source -> target; registers the model fine-tuned on `register_k`%."""
    from . import registry
    from .evaluation import TargetData
    from .plots import learning_curves
    from .transfer import transfer_study

    tp = p["transfer"]
    df, meta = _load_features(target)
    data = TargetData(target, df, _load_ms_features(target, df["record_id"]) if "tvm_xgb" in tp["approaches"] else None)
    if "tvm_xgb" in tp["approaches"] and data.ms_features is None:
        _echo(f"{target}: no MetaSchedule features (no msfeatures stage for this target): tvm_xgb is left out")
    curves, finetuned = transfer_study(
        model, data, [float(k) for k in tp["fractions"]], tp["approaches"], test_fraction=float(tp["test_fraction"]), seed=int(tp["seed"]),
        finetune_epochs=int(tp["finetune_epochs"]), finetune_steps=int(tp.get("finetune_steps", 0)),
        finetune_lr=float(tp["finetune_lr"]) if tp.get("finetune_lr") else None, attention_params=p["attention"],
        lgb_params=dict(p["train"]["lightgbm"]), feature_schema=meta["feature_schema"], feature_names=meta["feature_names"], log=_echo,
        keep_finetuned_at=float(tp["register_k"]),
    )
    for plot in plots:
        plot.parent.mkdir(parents=True, exist_ok=True)
        learning_curves(curves, f"{source} -> {target}", plot)
    study = {"source": source, "target": target, "source_model": {"name": resolved.name, "version": resolved.version, "alias": resolved.alias}}
    if finetuned is not None:
        out = MODELS_DIR / "finetuned" / target
        finetuned.metadata.target = target
        finetuned.save(out)
        k = f"{float(tp['register_k']):g}"
        rep = curves["finetune"][k]
        version = registry.log_and_register(
            out, target, experiment=p["registry"]["experiment"], run_name=f"finetune-{source}-to-{target}",
            params={"source_model": f"{resolved.name}/{resolved.version}", "k_percent": k, "finetune_epochs": tp["finetune_epochs"], "finetune_steps": tp.get("finetune_steps", 0),
                    "finetune_lr": tp.get("finetune_lr")},
            metrics={"pca": rep["pca"], "top5": rep["top5"]},
            tags={"target": target, "model_family": "attention", "feature_schema": meta["feature_schema"], "split": f"transfer:{k}%",
                  "source_model": f"{resolved.name}/{resolved.version}", "validation": json.loads((REPORTS_DIR / "validation" / f"{target}.json").read_text())["success"] and "passed" or "failed",
                  "git_commit": git_commit(), "metric.pca": rep["pca"], "metric.top5": rep["top5"],
                  "eval_data_hash": f"transfer:{md5_file(FEATURES_DIR / f'{target}.parquet')}:{tp['test_fraction']}:{tp['seed']}"},
        )
        study["finetuned_registered"] = {"name": registry.model_name(target), "version": version, "k_percent": k}
    return curves, study


def _load_ms_features(target_id: str, record_ids) -> list | None:
    import pandas as pd

    from .models.tvm_xgb import unpack_features

    index_file = FEATURES_DIR / f"{target_id}.ms_index.parquet"
    if not index_file.exists():
        return None
    idx = pd.read_parquet(index_file)
    mats = dict(zip(idx["record_id"], unpack_features(idx["n_stores"].to_numpy(), np.load(FEATURES_DIR / f"{target_id}.ms_rows.npy"))))
    return [mats[r] for r in record_ids]


def evaluate() -> None:
    """Every model under every split strategy, per target (DVC metrics), plus per-network
    tables, plots of top-k per network and PCA per split, and one task's ranking scatter."""
    import csv

    from .evaluation import TargetData, run_study
    from .plots import pca_per_split, ranking_scatter, topk_per_network

    p = load_params()
    ev = p["evaluate"]
    datasets, meta = {}, None
    for target_id in p["targets"]:
        df, meta = _load_features(target_id)
        ms = _load_ms_features(target_id, df["record_id"]) if "tvm_xgb" in ev["models"] else None
        datasets[target_id] = TargetData(target_id, df, ms)
    lgb = dict(p["train"]["lightgbm"])
    metrics, per_network, preds = run_study(
        datasets, ev["splits"], ev["models"], p["split"], lgb, meta["feature_schema"], meta["feature_names"], progress=lambda m: _echo(f"evaluate {m}"),
        attention_params=p.get("attention"),
    )
    (REPORTS_DIR / "metrics").mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / "metrics" / "evaluate.json").write_text(_json(metrics))
    (REPORTS_DIR / "metrics" / "per_network.json").write_text(_json(per_network))
    (REPORTS_DIR / "plots").mkdir(parents=True, exist_ok=True)
    with open(REPORTS_DIR / "plots" / "topk_per_network.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["target", "split", "network", "model", "pca", "top1", "top5"])
        w.writeheader()
        for t, by_split in per_network.items():
            for sp, by_net in by_split.items():
                for net, by_model in by_net.items():
                    for m, r in by_model.items():
                        w.writerow({"target": t, "split": sp, "network": net, "model": m, "pca": r["pca"], "top1": r["top1"], "top5": r["top5"]})
    with open(REPORTS_DIR / "plots" / "pca_per_split.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["target", "split", "model", "pca", "top5"])
        w.writeheader()
        for t, by_split in metrics.items():
            for sp, by_model in by_split.items():
                for m, r in by_model.items():
                    w.writerow({"target": t, "split": sp, "model": m, "pca": r["pca"], "top5": r["top5"]})
    figures = REPORTS_DIR / "figures"
    pca_per_split(metrics, figures / "pca_per_split.png")
    rows = []
    for t in per_network:
        split = "by_network" if "by_network" in per_network[t] else next(iter(per_network[t]))
        topk_per_network(per_network[t][split], f"{t} ({split})", figures / f"topk_per_network_{t}.png")
        te, scores = preds[t][split]
        model_key = "lightgbm_rank" if "lightgbm_rank" in scores else next(iter(scores))
        task = te["task_id"].value_counts().idxmax()
        m = (te["task_id"] == task).to_numpy()
        meas_rank = (-te["label"].to_numpy()[m]).argsort().argsort()
        pred_rank = (-scores[model_key][m]).argsort().argsort()
        rows += [{"target": t, "task_id": task, "measured_rank": int(a), "predicted_rank": int(b)} for a, b in zip(meas_rank, pred_rank)]
        ranking_scatter(meas_rank, pred_rank, f"{t} {split} {model_key}: task {task}", figures / f"ranking_{t}.png")
    with open(REPORTS_DIR / "plots" / "ranking.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["target", "task_id", "measured_rank", "predicted_rank"])
        w.writeheader()
        w.writerows(rows)
    for t, by_split in metrics.items():
        for sp, by_model in by_split.items():
            _echo(f"{t} {sp}: " + ", ".join(f"{m} pca={r['pca']:.3f} top5={r['top5']:.3f}" for m, r in by_model.items()))


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
