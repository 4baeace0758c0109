"""Tuning with registry models: a MetaSchedule cost-model adapter and the side-by-side study.

`cost_model("models:/tensorcost-<target>@<alias>")` turns a registered model into MetaSchedule's
cost model for any tuning script; `RegistryCostModel` lets any tensorcost model (every family of
`models`) serve: MetaSchedule hands it live candidates; it featurizes their traces with the same
code that featurized the training records, and scores them (frozen), or also learns from the
search's measurements (online).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import hardware, registry
from . import hardware as hwmod  # where a parameter named `hardware` (cost_model's public keyword) hides the module
from .collect import make_builder_runner, network_to_relax
from .errors import UserError
from .features import FEATURE_SCHEMA_VERSION, FeatureTable, per_task_labels, table_from_traces, workload_features
from .features.metaschedule import extract_from_candidates
from .hardware import Target
from .params import HostParams, MeasureConfig, TuneConfig
from .records import classify_op
from .registry import project_root
from .safeio import write_text
from .tvm_support import register_x86_intrinsics_only, structural_hash_hex, trace_to_json, tvm_target, workload_info
from .user_network import load_network
from .zoo import get_network


def score_candidates(model, trace_jsons: list[str], workload: list[float], hardware: list[float], ms_features=None) -> np.ndarray:
    """Featurize live candidates the way the model's training records were, and score them.
    `ms_features`: MetaSchedule's per-store features of the same candidates, for models that
    read them (`"ms_features" in model.inputs`)."""
    if not trace_jsons:
        return np.zeros(0)
    table = table_from_traces(trace_jsons, workload, hardware, target=model.metadata.target)
    table.ms_features = ms_features
    return model.predict(table)


MODES = ("frozen", "online")


def measured_latency(result) -> float | None:
    """Mean seconds of a MetaSchedule RunnerResult; None for a failed or empty run."""
    if getattr(result, "error_msg", None) or not getattr(result, "run_secs", None):
        return None
    secs = [float(x) for x in result.run_secs]
    return float(np.mean(secs)) if secs else None


def make_registry_cost_model(model, hw: Target, mode: str = "frozen", min_new: int = 8, info: dict | None = None):
    """Wrap a trained tensorcost model as a MetaSchedule `PyCostModel`.

    `frozen`: the pre-trained model alone guides the search (`update` only counts results).
    `online`: like TVM's XGBoost, it learns from the search's own measurements: once at least
    `min_new` new valid results have arrived, a copy of the pre-trained model is fine-tuned
    (`fit(warm_start=True)`) on every measurement of the search so far, labelled per task as the
    training records were. Fine-tuning restarts from the pre-trained weights each time, so early
    noisy updates do not compound.
    """
    import tvm
    from tvm.s_tir.meta_schedule.cost_model import PyCostModel

    if mode not in MODES:
        raise UserError(f"cost model mode {mode!r}: valid modes are {', '.join(MODES)}")
    if mode == "online" and not model.can_warm_start:
        raise UserError(f"a {model.family} model cannot be fine-tuned during the search; use mode='frozen'")
    hw_feats = hw.features()

    @tvm.ir.utils.derived_object
    class RegistryCostModel(PyCostModel):
        def __init__(self):
            super().__init__()
            self.mode = mode
            self.registry_info = dict(info or {})
            self.base = model
            self.current = model
            self.workloads: dict[str, list[float]] = {}
            self.measured: dict[str, list[tuple[str, float, object]]] = {}  # task key -> (trace, seconds, MetaSchedule features or None)
            self.n_predicted = 0
            self.predict_seconds = 0.0
            self.n_updates = 0
            self.n_refits = 0
            self.refit_seconds = 0.0
            self._new = 0

        def load(self, path: str) -> None:  # the model comes from the registry, not from MetaSchedule
            pass

        def save(self, path: str) -> None:
            write_text(path, json.dumps({"model": model.metadata.family, "target": model.metadata.target, "mode": self.mode,
                                              "refits": self.n_refits, "measured": sum(map(len, self.measured.values()))}))

        def _key(self, context) -> str:
            key = structural_hash_hex(context.mod)
            if key not in self.workloads:
                info = workload_info(context.mod)
                self.workloads[key] = workload_features(classify_op(str(context.task_name)), info["shapes"], info["flops"], info["bytes_moved"])
            return key

        def update(self, context, candidates, results) -> None:
            self.n_updates += len(results)
            if self.mode != "online":
                return
            key = self._key(context)
            secs = [measured_latency(res) for res in results]
            valid = [i for i, sec in enumerate(secs) if sec is not None and sec > 0]
            # a model that reads MetaSchedule's features refits on them too: extracted now, while the
            # candidates (their schedules) are at hand; the traces alone would need the task's module
            mats = extract_from_candidates(context, [candidates[i] for i in valid]) if valid and "ms_features" in self.base.inputs else [None] * len(valid)
            for i, mat in zip(valid, mats):
                self.measured.setdefault(key, []).append((trace_to_json(candidates[i].sch.trace), secs[i], mat))
                self._new += 1
            if self._new >= min_new:
                self._refit()

        def _refit(self) -> None:
            t0 = time.perf_counter()
            parts = []
            for key, rows in self.measured.items():
                if len(rows) < 2:
                    continue  # nothing to rank yet
                part = table_from_traces([t for t, _, _ in rows], self.workloads[key], hw_feats, target=model.metadata.target, task_id=key)
                if "ms_features" in self.base.inputs:
                    part.ms_features = [m for _, _, m in rows]
                lat = np.array([s for _, s, _ in rows])
                part.frame["latency_s"] = lat
                part.frame["label"] = per_task_labels([key] * len(rows), lat)
                parts.append(part)
            if not parts:
                return
            fresh = copy.deepcopy(self.base)
            fresh.fit(FeatureTable.concat(parts, model.metadata.target), warm_start=True, seed=0)
            self.current = fresh
            self.n_refits += 1
            self._new = 0
            self.refit_seconds += time.perf_counter() - t0

        def predict(self, context, candidates) -> np.ndarray:
            t0 = time.perf_counter()
            ms_feats = extract_from_candidates(context, candidates) if "ms_features" in self.current.inputs else None
            scores = score_candidates(self.current, [trace_to_json(c.sch.trace) for c in candidates], self.workloads[self._key(context)], hw_feats, ms_feats)
            self.n_predicted += len(candidates)
            self.predict_seconds += time.perf_counter() - t0
            return np.asarray(scores, dtype="float64")

    return RegistryCostModel()


def fast_local_builder(**kwargs):
    """MetaSchedule's LocalBuilder whose workers import only the x86 tensor intrinsics: with the
    defaults every worker pool imports all of them (about 29 s on 2 cores), and a build under
    load then passes LocalBuilder's 30 s timeout and every trial fails. For any tuning script."""
    import tvm.s_tir.meta_schedule as ms

    register_x86_intrinsics_only()
    return ms.builder.LocalBuilder(initializer=register_x86_intrinsics_only, **kwargs)


def cost_model(uri: str, mode: str = "frozen", hardware: str | Target | None = None, min_new: int = 8):
    """A MetaSchedule cost model from the registry, for any `tune_tir` / `tune_tasks` /
    `tune_relax` script: `uri` is `models:/tensorcost-<target>@<alias>` (or `/<version>`);
    `mode` is `frozen` or `online` (fine-tuned on the search's measurements); `hardware` is the
    target id (or Target) of the machine the search measures on, by default the model's own
    target. The model is loaded from its verified artifact files (no pickle, no code)."""
    model, target, info = registry.load_uri(uri, expected_feature_schema=FEATURE_SCHEMA_VERSION)
    if hardware is None:
        hw = hwmod.describe_target(target)
    elif isinstance(hardware, str):
        hw = hwmod.describe_target(hardware)
    else:
        hw = hardware
    return make_registry_cost_model(model, hw, mode=mode, min_new=min_new, info=info)


def make_progress_callback(total: int, desc: str):
    """A MetaSchedule measure callback that drives a tqdm bar (tune_tasks itself only logs to files)."""
    import tvm
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    bar = tqdm(total=total, desc=desc, unit="trial")

    @tvm.ir.utils.derived_object
    class Progress(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
            bar.update(len(runner_results))

    return Progress(), bar


def _quiet_metaschedule() -> None:
    """MetaSchedule prints a task table per round to stdout: keep its console to warnings (the
    full log stays in <work_dir>/logs; --debug / TENSORCOST_DEBUG=1 shows it). Its logger setup
    reads the level when a search starts, so this is set before each one."""
    if os.environ.get("TENSORCOST_DEBUG") != "1":
        logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)


def tune_network(hw: Target, cfg: TuneConfig, cost_model, work_dir: Path, measure_cfg, extra_callbacks=None) -> dict:
    """Tune the network's largest tasks with `cost_model` ("xgb" or a PyCostModel), compile the
    whole network with the tuned schedules and time it. Returns a report dict.
    `extra_callbacks`: a function (task weights, in the order of the tuned tasks) -> measure
    callbacks added to the search's (benchmarks record progress curves with them)."""
    import tvm.s_tir.meta_schedule as ms

    register_x86_intrinsics_only()
    _quiet_metaschedule()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    target = tvm_target(hw)
    mod = network_to_relax(cfg.network, target)
    extracted = ms.relax_integration.extract_tasks(mod, target)
    from tvm.s_tir.analysis import estimate_tir_flops

    def flops(t):
        try:
            return float(estimate_tir_flops(t.dispatched[0]))
        except Exception:  # noqa: BLE001
            return 0.0

    chosen = sorted(extracted, key=lambda t: -flops(t) * int(t.weight))[: cfg.max_tasks or None]
    if not chosen:
        raise UserError(f"network {cfg.network}: no tasks to tune (TVM found no operator it schedules)")
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        chosen, str(work_dir), space="post-order-apply",
        strategy=ms.search_strategy.EvolutionarySearch(population_size=cfg.population_size),
        num_threads=2, seed=cfg.seed
    )
    builder, runner = make_builder_runner(hw, measure_cfg)
    database = ms.database.JSONDatabase(work_dir=str(work_dir))
    budget = cfg.trials_per_task * len(chosen) if cfg.trials_per_task else cfg.max_trials_global
    progress, bar = make_progress_callback(budget, f"tune {cfg.network} ({'xgb' if isinstance(cost_model, str) else 'tensorcost'})")
    callbacks = list(ms.measure_callback.MeasureCallback.create("default")) + [progress]
    if extra_callbacks is not None:
        callbacks += list(extra_callbacks([float(w) for w in weights]))
    task_budget = max(1, -(-budget // len(chosen)))  # ceil: the budget a task gets when spread
    t0 = time.perf_counter()
    ms.tune_tasks(
        tasks=contexts, task_weights=weights, work_dir=str(work_dir), max_trials_global=budget,
        num_trials_per_iter=min(cfg.num_trials_per_iter, task_budget) if cfg.spread else cfg.num_trials_per_iter,
        max_trials_per_task=task_budget if cfg.spread else None, task_scheduler="round-robin" if cfg.spread else "gradient",
        builder=builder, runner=runner, database=database, cost_model=cost_model, measure_callbacks=callbacks,
    )
    if bar.n < bar.total:  # a task whose search space is smaller than its share ends early
        bar.set_postfix_str("done: some search spaces were smaller than their budget")
    bar.close()
    tuning_s = time.perf_counter() - t0
    per_task = {}
    for ctx, task in zip(contexts, chosen):
        best = database.query_tuning_record(ctx.mod, target, workload_name="main")
        secs = [float(x) for x in best.run_secs] if best is not None else []
        per_task[str(task.task_name)] = {"best_latency_s": (sum(secs) / len(secs)) if secs else None, "weight": int(task.weight)}
    n_records = len(database.get_all_tuning_records())
    runs = time_network(cfg, network_to_relax(cfg.network, target, fuse=False), target, database)
    tuned = [v["best_latency_s"] * v["weight"] for v in per_task.values() if v["best_latency_s"] is not None]
    return {
        "tuning_wall_s": tuning_s,
        "trials_measured": n_records,
        "tasks_tuned": [str(t.task_name) for t in chosen],
        "tasks_in_network": len(extracted),
        "budget": {"max_trials_global": budget, "trials_per_task": task_budget if cfg.spread else None, "scheduler": "round-robin" if cfg.spread else "gradient"},
        "per_task": per_task,
        # The objective the task scheduler minimises: sum over tuned tasks of weight x best latency.
        "tuned_tasks_weighted_latency_us": sum(tuned) * 1e6 if len(tuned) == len(per_task) else None,
        "network_latency_ms": {"median": float(np.median(runs)) * 1e3, "min": min(runs) * 1e3, "max": max(runs) * 1e3, "repeats": len(runs)},
    }


def time_network(cfg: TuneConfig, mod, target, database=None) -> list[float]:
    """Compile the whole network (tuned schedules from `database`, if any) and time it; seconds per run."""
    import tvm
    import tvm.s_tir.meta_schedule as ms
    from tvm import relax

    database = database if database is not None else ms.database.MemoryDatabase()
    with target:
        exe = ms.relax_integration.compile_relax(database, mod, target, params=None)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(exe, dev)
    spec = get_network(cfg.network)
    inp = tvm.runtime.tensor(np.random.default_rng(0).standard_normal(spec.input_shape).astype(spec.input_dtype), dev)
    res = vm.time_evaluator("main", dev, number=cfg.timing_number, repeat=cfg.timing_repeat)(inp)
    return [float(x) for x in res.results]


def untuned_network_latency_ms(hw: Target, cfg: TuneConfig) -> dict:
    """The network compiled with no tuned schedule at all: the floor tuning improves on."""
    register_x86_intrinsics_only()
    target = tvm_target(hw)
    runs = time_network(cfg, network_to_relax(cfg.network, target, fuse=False), target)
    return {"median": float(np.median(runs)) * 1e3, "min": min(runs) * 1e3, "max": max(runs) * 1e3, "repeats": len(runs)}


def compare_cost_models(hw: Target, cfg: TuneConfig, model, model_info: dict, work_dir: Path, measure_cfg, log=None, mode: str = "frozen") -> dict:
    """Tune `cfg.network` with `model` (a tensorcost model as MetaSchedule's cost model, `mode`
    frozen or online) and with TVM's XGBoost on the same budget, and time the untuned network:
    the tune stage's report."""
    say = log or (lambda m: None)
    ours = make_registry_cost_model(model, hw, mode=mode, info=model_info)
    report = {"target": hw.id, "network": cfg.network,
              "budget": {"max_trials_global": cfg.max_trials_global, "num_trials_per_iter": cfg.num_trials_per_iter, "max_tasks": cfg.max_tasks}, "cost_models": {}}
    say(f"tuning {cfg.network} on {hw.id} with {model_info.get('name')} v{model_info.get('version')}")
    r = tune_network(hw, cfg, ours, work_dir / "tensorcost", measure_cfg)
    r["model"] = model_info
    r["predict_candidates_per_s"] = ours.n_predicted / ours.predict_seconds if ours.predict_seconds else None
    r["mode"], r["online_refits"], r["online_refit_s"] = mode, ours.n_refits, round(ours.refit_seconds, 3)
    report["cost_models"]["tensorcost"] = r
    say("tuning with TVM's XGBoost cost model (same budget)")
    report["cost_models"]["tvm_xgb"] = tune_network(hw, cfg, "xgb", work_dir / "tvm_xgb", measure_cfg)
    report["untuned_network_latency_ms"] = untuned_network_latency_ms(hw, cfg)
    report["summary"] = tune_summary(report)
    return report


def tune_summary(report: dict) -> dict:
    """The side-by-side figures of a `compare_cost_models` report."""
    a, b = report["cost_models"]["tensorcost"], report["cost_models"]["tvm_xgb"]
    return {
        "untuned_network_ms": report["untuned_network_latency_ms"]["median"],
        "tensorcost_network_ms": a["network_latency_ms"]["median"], "tvm_xgb_network_ms": b["network_latency_ms"]["median"],
        "tensorcost_tuned_tasks_us": a["tuned_tasks_weighted_latency_us"], "tvm_xgb_tuned_tasks_us": b["tuned_tasks_weighted_latency_us"],
        "tensorcost_tuning_s": a["tuning_wall_s"], "tvm_xgb_tuning_s": b["tuning_wall_s"],
        "speedup_vs_tvm_xgb": b["network_latency_ms"]["median"] / a["network_latency_ms"]["median"],
    }


def repository_host_target() -> tuple[Target | None, Path]:
    """(the target `make run` resolved for this machine, the file it is read from): the
    repository's data/host/target.json (found from the working folder up); None if not there yet."""
    path = (project_root() or Path.cwd()) / "data" / "host" / "target.json"
    return (Target.from_dict(json.loads(path.read_text())) if path.is_file() else None), path


def this_machine_target():
    """The target the registry's models of this machine are registered under: the one `make run`
    resolved (`repository_host_target`), else the pipeline's default choice for this machine
    (params' `host.variants`, in order)."""
    target, _ = repository_host_target()
    return target if target is not None else hardware.resolve_target("auto", HostParams().variants)


def tune_user_network(network: str, input_shape: str | tuple[int, ...] | None = None, *, target: str = "host", alias: str = "champion",
                      trials_per_task: int = 16, trials: int | None = None, compare_xgb: bool = False, mode: str = "frozen",
                      architecture: str | None = None, work_dir: Path | None = None, measure_cfg=None, seed: int = 0, log=print) -> dict:
    """Tune a user's network (`user_network.load_network`: a zoo name, `file.py:function` or
    `file.onnx`) on this machine with the registry's model for it (alias `champion`, else
    `candidate`: said in one line), compile it with the tuned schedules and time it. The budget is
    spread over every task of the network (`trials_per_task` each, or `trials` in all); with
    `compare_xgb`, the same budget with TVM's XGBoost beside it. Returns the report."""
    spec = load_network(network, input_shape, architecture=architecture)
    hw = this_machine_target() if target == "host" else hardware.resolve_target(target)
    model, resolved = registry.load_by_alias(hw.id, alias, fallback=registry.CANDIDATE if alias == registry.CHAMPION else None,
                                             expected_feature_schema=FEATURE_SCHEMA_VERSION)
    log(resolved.message)
    cfg = TuneConfig(network=spec.name, max_tasks=0, max_trials_global=trials or 1, trials_per_task=0 if trials else trials_per_task,
                     num_trials_per_iter=16, spread=True, seed=seed)
    work_dir = Path(work_dir) if work_dir is not None else Path(".tensorcost") / "tune" / spec.name
    measure_cfg = measure_cfg or MeasureConfig()
    info = {"name": resolved.name, "version": resolved.version, "alias_requested": alias, "alias_used": resolved.alias, "family": model.family}
    ours = make_registry_cost_model(model, hw, mode=mode, info=info)
    log(f"tuning {spec.name} on {hw.id} with {resolved.name} v{resolved.version} ({f'{trials} trials' if trials else f'{trials_per_task} trials a task'})")
    report = {"target": hw.id, "network": spec.name, "input_shape": list(spec.input_shape), "kind": spec.kind, "cost_models": {}}
    r = tune_network(hw, cfg, ours, work_dir / "tensorcost", measure_cfg)
    r["model"], r["mode"] = info, mode
    report["cost_models"]["tensorcost"] = r
    if compare_xgb:
        log("the same budget with TVM's XGBoost cost model")
        report["cost_models"]["tvm_xgb"] = tune_network(hw, cfg, "xgb", work_dir / "tvm_xgb", measure_cfg)
    report["untuned_network_latency_ms"] = untuned_network_latency_ms(hw, cfg)
    report["summary"] = {"untuned_network_ms": report["untuned_network_latency_ms"]["median"],
                         **{f"{k}_network_ms": v["network_latency_ms"]["median"] for k, v in report["cost_models"].items()},
                         **{f"{k}_tuning_s": round(v["tuning_wall_s"], 1) for k, v in report["cost_models"].items()}}
    return report
