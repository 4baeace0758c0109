"""How well does a registered model rank the programs of *my* network on *this* machine?

`score_network` measures a sample of random programs of the network's largest tasks here (the
records land in a resumable work folder, as the collect stage's do), featurizes them as the
training records were, and reports PCA / top-1 / top-5 of registered models (by alias or
version) beside a random ranking's expected figures and TVM's XGBoost cost model trained on
every slot of the repository's feature store that has MetaSchedule features: the verdict on an
unseen network, where a user meets the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from . import collect, hardware, registry
from . import records as rec
from .errors import UserError
from .evaluation import ModelSpec, pool, random_floor, score
from .features import FEATURE_SCHEMA_VERSION, FeatureTable, featurize_table
from .features.metaschedule import extract_ms_features, ms_feature_slots
from .features.store import load_feature_table
from .hardware import HARDWARE_FEATURE_NAMES
from .params import MeasureConfig, load_params
from .registry import project_root
from .tuning import this_machine_target
from .tvm_support import register_x86_intrinsics_only, tvm_target
from .user_network import load_network

XGB_PRESET = "tvm_xgb"


def measure_network_sample(spec, hw, *, programs_per_task: int, max_tasks: int, seed: int, work_dir: Path, measure_cfg, progress: bool = True):
    """(tasks, records table) of `max_tasks` of the network's tasks (largest FLOPs first), each
    with up to `programs_per_task` random programs measured on `hw`; resumable in `work_dir`."""
    register_x86_intrinsics_only()
    target = tvm_target(hw)
    tasks = collect.select_tasks(collect.extract_tasks([spec.name], target), max_tasks)
    if not tasks:
        raise UserError(f"network {spec.name}: no tasks to measure (TVM found no operator it schedules)")
    with tqdm(total=len(tasks), desc=f"sample {spec.name}", unit="task", disable=not progress) as bar:
        programs = collect.sample_task_set(tasks, target, programs_per_task, seed, progress=lambda *_: bar.update(1))
    collect.collect_target(tasks, programs, hw, Path(work_dir), measure_cfg)
    return tasks, rec.read_records(collect.parts_dir(Path(work_dir)))


def _with_ms_features(data, records, tasks, hw) -> None:
    """Attach MetaSchedule's per-store features to `data` (rows of `records`) for models that read them."""
    traces = dict(zip(records.column("record_id").to_pylist(), records.column("trace").to_pylist()))
    rows = [(t, traces[r]) for t, r in zip(data.frame["task_id"], data.frame["record_id"])]
    data.ms_features = extract_ms_features({t.task_id: t for t in tasks}, rows, tvm_target(hw))


def _xgb_baseline(data, log) -> dict | None:
    """TVM's XGBoost cost model trained on every slot of the repository's feature store with
    MetaSchedule features, scored on `data`; None (said) where there is no such store."""
    root = project_root()
    features = root / "data" / "features" if root is not None else None
    slots = [s for s in ms_feature_slots(features) if (features / s).is_dir()] if features is not None else []
    if not slots:
        log("TVM's XGBoost: no feature store with MetaSchedule features in the repository (`make run` builds it): not scored")
        return None
    train = pool([load_feature_table(features, s, with_ms=True)[0] for s in slots], "pooled")
    log(f"TVM's XGBoost: training on {len(train)} records of {', '.join(slots)}")
    model = ModelSpec.preset(load_params(root / "params.yaml"), XGB_PRESET).create(train, target=data.target_id)
    model.fit(train)
    return {"trained_on": slots, "train_records": len(train), **score(model, data)}


def score_network(network: str, input_shape: str | tuple[int, ...] | None = None, *, target: str = "host",
                  models: Sequence[str] | None = None, programs_per_task: int = 16, max_tasks: int = 6,
                  xgb: bool = True, seed: int = 0, architecture: str | None = None, work_dir: Path | None = None,
                  measure_cfg=None, log=print) -> dict:
    """Measure a sample of `network`'s programs here and score registered models on it. `models`:
    aliases (`champion`, `candidate`, ...) or versions (`3`, `v3`); default: the champion and the
    candidate (those that exist, each version once). Returns the report."""
    spec = load_network(network, input_shape, architecture=architecture)
    hw = this_machine_target() if target == "host" else hardware.resolve_target(target)
    loaded, versions = [], set()
    if models is None:  # the aliases that exist, each version once
        models = [a for a in (registry.CHAMPION, registry.CANDIDATE) if registry.get_version(hw.id, a) is not None]
        if not models:
            registry.resolve(hw.id, registry.CHAMPION, registry.CANDIDATE)  # the registry's own one-line error: what is missing, and the fix
    for m in models:  # every model before measuring: a typo is said before minutes of work
        if m.lstrip("v").isdigit():
            version = registry.canonical_version(m)
            model, _ = registry.load_version(hw.id, version, FEATURE_SCHEMA_VERSION)
            label = f"v{version}"
        else:
            model, resolved = registry.load_by_alias(hw.id, m, fallback=None, expected_feature_schema=FEATURE_SCHEMA_VERSION)
            version, label = resolved.version, f"{m} (v{resolved.version})"
        if version not in versions:
            versions.add(version)
            loaded.append((label, model, {"version": version}))
    work_dir = Path(work_dir) if work_dir is not None else Path(".tensorcost") / "score" / f"{spec.name}-{hw.id}"
    log(f"measuring up to {programs_per_task} programs of each of {max_tasks} tasks of {spec.name} on {hw.id} (in {work_dir}; resumable)")
    tasks, records = measure_network_sample(spec, hw, programs_per_task=programs_per_task, max_tasks=max_tasks, seed=seed,
                                            work_dir=work_dir, measure_cfg=measure_cfg or MeasureConfig())
    frame = featurize_table(records, hw.features(), HARDWARE_FEATURE_NAMES, slot=hw.id)
    data = FeatureTable(frame, hw.id)
    if len(data) < 2:
        raise UserError(f"network {spec.name}: {len(data)} valid measurements on {hw.id}; nothing to rank (see {work_dir})")
    needs_ms = xgb or any("ms_features" in model.inputs for _, model, _ in loaded)
    if needs_ms:
        _with_ms_features(data, records, tasks, hw)
    report = {"network": spec.name, "target": hw.id, "tasks": len(tasks), "records": len(data), "programs_per_task": programs_per_task,
              "models": {}, "random": random_floor(data)}
    for label, model, info in loaded:
        report["models"][label] = {**info, "family": model.family, **score(model, data)}
    if xgb:
        report["tvm_xgb"] = _xgb_baseline(data, log)
    return report
