"""One function per DVC stage: read the typed params, call the rooms, write the declared outputs.

Thin glue `dvc.yaml` runs through `tensorcost stage <name>`; no logic a test would need lives
only here. Per-target stages take a dataset *slot*: a bundled target id, or `host` for this
machine's fresh measurement (its real target id is in data/host/target.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from tqdm import tqdm

from . import collect as col
from . import dataset, hardware, pruning, registry, rpc, safeio, validation
from . import records as rec
from .errors import MissingDataError, UserError
from .evaluation import ModelSpec, fit, joint_training_side, model_specs, pick_candidate, pool, random_floor, reuse_trained, run_study, serving_problems, train_models, train_test, tree_model_keys, write_study_reports
from .features import FEATURE_SCHEMA_VERSION, flat_feature_names, fragment_paths, store_hash
from .features.build import featurize_file
from .features.metaschedule import ms_features_of_records, valid_task_counts
from .features.store import StoreView
from .hardware import HARDWARE_FEATURE_NAMES, Target, describe_target
from .models import family_class
from .models.ddp_train import torchrun_fit
from .models.distributed import cluster_fit
from .params import HOST, PARAMS_FILE, Params, TuneConfig, load_params
from .params_io import git_commit, md5_file
from .plots import learning_curves
from .pyfunc import example_frame
from .reports import evaluation_summary, ranking_summary, write_json, write_summary
from .splits import evaluation_set_id as split_evaluation_set
from .splits import hardware_split
from .transfer import becomes_candidate, chosen_sources, transfer_study
from .transfer import evaluation_set_id as transfer_evaluation_set
from .tuning import compare_cost_models
from .tvm_support import tvm_target
from .validation import SlotData, data_facts

HOST_FILE = Path("data/host/target.json")
PROGRAMS_DIR = Path("data/programs")  # a fresh program set (`tensorcost dataset sample`), when there is one
RAW_DIR = Path("data/raw")
RECORDS_DIR = Path("data/records")
FEATURES_DIR = Path("data/features")
MODELS_DIR = Path("models")
PRUNED_DIR = Path("data/pruned")
REPORTS_DIR = Path("reports")
MS_CACHE = Path(".tensorcost/cache/msfeatures")  # shared by slots measured under the same code generation


def _echo(msg: str) -> None:
    print(f"[tensorcost] {msg}", file=sys.stderr, flush=True)


def _read_target(path: Path):
    if not path.exists():
        raise MissingDataError(f"{path}: missing (run the pipeline from the start: dvc repro)")
    return Target.from_dict(json.loads(path.read_text()))


def _slot_params(slot: str) -> Params:
    """The params, once `slot` is known to be a dataset slot of them: a slot name becomes file
    paths, so nothing outside the slots (`../x`, a typo) ever reaches one."""
    p = load_params()
    if slot not in p.targets:
        raise UserError(f"{slot!r} is not a dataset slot of params.yaml (`targets`: {', '.join(p.targets)})")
    return p


def host() -> None:
    """Resolve this machine's target (`host.target`: auto or an id) and describe it. DVC runs this
    every time (always_changed): a new machine changes the file, and the measurement re-runs."""
    p = load_params()
    if p.measure.rpc is not None:  # the `host` slot is then the machine behind the RPC key

        target = rpc.resolve_remote(p.measure.rpc, p.host.target, p.host.variants)
    else:
        target = hardware.resolve_target(p.host.target, p.host.variants)
    _write_if_changed(HOST_FILE, json.dumps(target.to_dict(), indent=1, sort_keys=True))
    _echo(f"host: {target.id} ({target.platform.model_name}, {target.platform.microarch}, {target.platform.cores} cores)")


REGISTRY_FILE = Path("data/registry/location.json")


def registry_location() -> None:
    """Record which model registry the stages register into (DVC runs this every time): the
    stages that register depend on the file, so a new registry (a team server) re-runs them."""
    where = registry.location()
    _write_if_changed(REGISTRY_FILE, json.dumps(where, indent=1, sort_keys=True))
    _echo(f"registry: {where['registry']}")


def _write_if_changed(path: Path, text: str) -> None:
    """An always-run stage's output, rewritten only when its content changes (its mtime then
    says when this machine or registry last changed)."""
    if not path.exists() or path.read_text() != text:
        safeio.write_text(path, text)


def collect() -> None:
    """Measure a sample of the bundled program set's tasks on this machine's target (resumable):
    fresh programs of them (`host.programs`), or the set's own."""
    p = load_params()
    hw = _read_target(HOST_FILE)
    task_dir = dataset.programs_dir(hw.kind)
    tasks, meta = col.read_tasks(task_dir)
    col.check_task_set_kind(meta, hw, task_dir)
    # the sampled tasks' programs only, never the set's (its row groups of other tasks are skipped)
    task_ids = dataset.sample_task_ids(col.task_program_counts(task_dir), p.host.tasks, p.host.seed)
    programs = col.read_task_programs(task_dir, task_ids)
    chosen = dataset.sample_programs(programs, 0, p.host.programs_per_task, p.host.seed)
    if p.host.programs == "fresh":  # programs no platform measured: the test sides downstream hold none a model trained on
        with tqdm(total=len(chosen), desc="fresh programs", unit="task", disable=None) as bar:
            sampled = col.fresh_sample(tasks, programs, chosen, meta, p.host.seed, progress=bar.update)
        left_out = sorted(set(chosen) - set(sampled))
        if left_out:
            _echo(f"collect: {len(left_out)} task(s) left out, their design spaces hold no program the set lacks: {', '.join(left_out)}")
        chosen = sampled
    tasks = [t for t in tasks if t.task_id in chosen]
    summary = col.collect_target(tasks, chosen, hw, RAW_DIR / HOST, p.measure)
    _echo(f"{hw.id}: {summary}")


def records(slot: str) -> None:
    """A slot's canonical records under their real target id: this machine's fresh measurement,
    or the slot's records file (bundled or imported), relabelled to the slot's target id."""
    p = _slot_params(slot)
    out = RECORDS_DIR / f"{slot}.parquet"
    # copied a batch at a time: a platform's records (traces and all) are never one table
    if slot == HOST:
        hw = _read_target(RAW_DIR / HOST / "target.json")
        rows = rec.copy_records(RAW_DIR / HOST / "parts", out)
    else:
        hw = hardware.describe_target(slot)
        path = Path(p.targets[slot])
        if not path.exists():
            raise MissingDataError(f"{path}: the records of {slot} are not there; bundled targets: {', '.join(dataset.bundled_targets())}")
        rows = rec.copy_records(path, out, transform=lambda part: dataset.relabel(part, slot))
    safeio.write_text(RECORDS_DIR / f"{slot}.target.json", json.dumps(hw.to_dict(), indent=1, sort_keys=True))
    _echo(f"{slot}: {rows} records of {hw.id}")


def validate(slot: str) -> None:
    _slot_params(slot)
    hw = _read_target(RECORDS_DIR / f"{slot}.target.json")
    # partition by partition (whole tasks): every row checked, never the file as one frame
    summary = validation.validate_records_file(RECORDS_DIR / f"{slot}.parquet", hw.id, REPORTS_DIR / "validation" / slot / "data_docs")
    summary.statistics["records_md5"] = md5_file(RECORDS_DIR / f"{slot}.parquet")  # the verdict names the file it judged
    validation.write_summary(summary, REPORTS_DIR / "validation" / f"{slot}.json")
    write_summary(f"validate-{slot}", {"success": summary.success, "rows": summary.n_rows})
    print(summary.readable())
    if not summary.success:
        raise UserError(f"records validation failed for {slot}; see reports/validation/{slot}/data_docs/index.html")


def _features_report(slot: str) -> Path:
    """The features suite's verdict on a slot's feature table, next to its records' report."""
    return REPORTS_DIR / "validation" / f"{slot}.features.json"


def featurize(slot: str) -> None:
    """Features of a slot's valid records as its feature store (data/features/<slot>/: Arrow
    fragments of whole tasks, built by worker processes, resumable), published only when every
    fragment passes the features suite (its report: reports/validation/<slot>.features.json,
    which train reads for its verdict)."""
    p = _slot_params(slot)
    validation.records_verdict(slot_data(slot))  # bad records (e.g. a trace that is not JSON) are reported there; featurizing them would crash
    hw = _read_target(RECORDS_DIR / f"{slot}.target.json")
    records_file = RECORDS_DIR / f"{slot}.parquet"
    writer = featurize_file(records_file, FEATURES_DIR, slot, hw.features(), HARDWARE_FEATURE_NAMES, workers=p.featurize.workers,
                            rows_per_fragment=p.featurize.rows_per_fragment)
    names = flat_feature_names(HARDWARE_FEATURE_NAMES)
    summary = validation.validate_feature_fragments(sorted(writer.partial.glob("part-*.parquet")), slot, hw.id, FEATURE_SCHEMA_VERSION, names)
    print(summary.readable())
    store, report = FEATURES_DIR / slot, _features_report(slot)
    if not summary.success:
        writer.abandon()
        shutil.rmtree(store, ignore_errors=True)  # no earlier features beside a failed verdict
        validation.write_summary(summary, report)
        write_summary(f"featurize-{slot}", {"success": False, "rows": summary.n_rows})
        raise UserError(f"features validation failed for {slot} ({store} not written): {summary.failed_expectations()}; see {report}")

    n_records = pq.ParquetFile(records_file).metadata.num_rows
    meta = writer.commit({"feature_names": names, "target": hw.id, "dropped_error_records": n_records - summary.n_rows})
    summary.statistics["features_md5"] = store_hash(FEATURES_DIR, slot)  # ties the verdict to the exact store train reads
    validation.write_summary(summary, report)
    write_summary(f"featurize-{slot}", {"success": True, "rows": summary.n_rows})
    _echo(f"{slot}: {meta['valid_records']} feature rows in {len(fragment_paths(FEATURES_DIR, slot))} fragments ({meta['dropped_error_records']} error records dropped)")


def msfeatures(slot: str) -> None:
    """MetaSchedule's PerStoreFeature vectors of every valid record (inputs of TVM's XGBoost),
    read and written a batch of records at a time (the records file is never held whole)."""
    _slot_params(slot)
    hw = _read_target(RECORDS_DIR / f"{slot}.target.json")
    records_file = RECORDS_DIR / f"{slot}.parquet"
    valid = valid_task_counts(records_file)
    task_dirs = [dataset.programs_dir("cpu"), dataset.programs_dir("gpu"), PROGRAMS_DIR]
    tasks = col.load_tasks(task_dirs)
    missing = sorted(set(valid) - set(tasks))
    if missing:  # before any extraction: a missing workload would stop the stage hours in
        raise MissingDataError(f"{slot}: no workload for tasks {missing[:5]} in {', '.join(f'{d}/tasks.json' for d in task_dirs)}")
    with tqdm(total=sum(valid.values()), desc=f"MetaSchedule features {slot}", unit="rec") as bar:
        n_rows = ms_features_of_records(records_file, tasks, tvm_target(hw), FEATURES_DIR, slot, bar.update, cache_dir=MS_CACHE)
    _echo(f"{slot}: {sum(valid.values())} records, {n_rows} store rows")


def slot_data(slot: str) -> SlotData:
    """Where a slot's records, features and their verdicts are (the layout the stages write)."""
    return SlotData(slot, RECORDS_DIR / f"{slot}.parquet", REPORTS_DIR / "validation" / f"{slot}.json", FEATURES_DIR, _features_report(slot))


def _train_and_register(p: Params, keys: list[str], train_t, test_t, *, target: str, models_dir: Path, run_prefix: str, trained_on: str,
                        tags: dict, params: dict, cluster=None, torchrun=None, slot: str | None = None, pool: Sequence[str] = ()) -> dict:
    """Every model of `keys` trained on `train_t`, scored on `test_t`, saved under `models_dir`
    and registered as a version of tensorcost-<target>, its card naming what it was trained on
    (`trained_on`) and its test figures. `pool`: the other slots whose training side is in
    `train_t` (a torchrun launch joins them too). Returns {key: row of the stage's report}."""
    specs = model_specs(p, keys)
    fit_with = None
    if cluster is not None:
        fit_with = cluster_fit(cluster)
    if torchrun is not None:
        fit_with = torchrun_fit(torchrun, FEATURES_DIR, slot or target, Path(PARAMS_FILE), Path(".tensorcost") / "torchrun", inner=fit_with, pool=pool)
    results = train_models(specs, train_t, test_t, log=lambda k, m: _echo(f"{run_prefix} {k} {m}"), fit=fit_with)
    rows = {}
    example = example_frame(test_t)  # each version is an MLflow pyfunc model too, with this input example
    for key, result in results.items():
        spec, m = specs[key], result.metrics
        out = models_dir / key
        result.model.save(out)
        version = registry.register_trained(out, target, key=key, family=spec.family, objective=result.model.metadata.objective, feature_schema=train_t.feature_schema,
                                            split=p.split.strategy, metrics=m, trained_on=trained_on, test_records=len(test_t), experiment=p.registry.experiment,
                                            run_name=f"{run_prefix}-{key}", params={"model": key, **params, **family_class(spec.family).run_params(spec.params)}, data_tags=tags,
                                            git_commit=git_commit(), curves=result.curves, input_example=example)
        rows[key] = {"version": version, "family": spec.family, "metrics": m, "train_s": result.train_s, "train_records": len(train_t), "test_records": len(test_t)}
        _echo(f"{run_prefix}: registered {registry.model_name(target)} v{version} ({key}): {m}")
    return rows


def _train_table(slot: str) -> StoreView:
    """A slot's feature store as the train stage reads it: the metadata whole, the numbers a
    fragment at a time (its models train from the view; read whole they train the same model,
    measured: benchmarks/train_memory.py, docs/SCALE.md)."""
    return StoreView(FEATURES_DIR, slot)


def _pooled_training_side(p: Params, target: str, table, own_train, facts: dict) -> tuple[object, list[str], dict]:
    """`train.pool_platforms`: `target`'s training side joined by the same split's training side
    of every other train target of its kind (`evaluation.joint_training_side`: a program on the
    target's test side is on every slot's test side, so none is trained on). Returns (training
    side, the slots in it, their data facts: one hash over all, passed only if each passed)."""
    try:
        datasets = {target: table} | {s: _train_table(s) for s in p.train.targets if s != target}
    except MissingDataError as e:
        raise MissingDataError(f"{e}; train.pool_platforms trains {target}'s models on every train target's rows (or set it false)") from e
    slots = [s for s, d in datasets.items() if s == target or d.kind == table.kind]  # CPU and GPU programs come from different spaces
    every = {target: facts} | {s: data_facts(slot_data(s)) for s in slots if s != target}  # each validated before it is trained on
    joined = joint_training_side({s: datasets[s] for s in slots}, target, p.split.strategy, p.split.model_dump(), own_train)
    digest = hashlib.md5(json.dumps({s: every[s]["hash"] for s in slots}, sort_keys=True).encode()).hexdigest()
    return joined, slots, {"hash": digest if len(slots) > 1 else facts["hash"], "validation_passed": all(every[s]["validation_passed"] for s in slots)}


def train(target: str) -> None:
    """Every model of `train.models` on the target's training split, each registered as a
    version of tensorcost-<target>; the best on the split's test side becomes `candidate`."""
    p = _slot_params(target)
    facts = data_facts(slot_data(target))  # before any model: data that failed validation is neither trained on nor registered
    table = _train_table(target)
    train_t, test_t = train_test(table, p.split.strategy, p.split.model_dump())
    sp = p.split
    train_t, platforms, train_facts = _pooled_training_side(p, target, table, train_t, facts) if p.train.pool_platforms else (train_t, [target], facts)
    tags = {"train_data_hash": train_facts["hash"], "eval_data_hash": split_evaluation_set(facts["hash"], sp.strategy, sp.test_fraction, sp.seed),
            "validation_passed": train_facts["validation_passed"], "trained_on_slots": ",".join(platforms)}
    trained_on = f"the {sp.strategy} training side of {len(train_t)} records" + (f" of {', '.join(platforms)} pooled" if len(platforms) > 1 else "")
    rows = _train_and_register(p, p.train.models, train_t, test_t, target=target, models_dir=MODELS_DIR / target, run_prefix=f"train-{target}",
                               trained_on=trained_on, tags=tags, params={}, cluster=p.train.cluster, torchrun=p.train.torchrun, slot=target,
                               pool=[s for s in platforms if s != target])
    floor = random_floor(test_t)  # a model that ranks worse than random is not served
    trees = tree_model_keys(model_specs(p, rows))  # nor one of another kind far below the trees
    figures = {k: r["metrics"] for k, r in rows.items()}
    best = pick_candidate(figures, p.train.candidate_metrics, floor, trees)
    registry.set_alias(target, registry.CANDIDATE, rows[best]["version"])
    _echo(f"{target}: '{registry.CANDIDATE}' -> v{rows[best]['version']} ({best}: best mean of {', '.join(p.train.candidate_metrics)} on the {sp.strategy} test side)")
    write_json(REPORTS_DIR / "train" / f"{target}.json", {"registered_model": registry.model_name(target), "split": sp.strategy,
                                                         "candidate_metrics": p.train.candidate_metrics, "random_floor": floor, "candidate": {"model": best, **rows[best]},
                                                         "not_served": {k: why for k, why in serving_problems(figures, trees, floor).items() if why},
                                                         "models": rows})
    write_summary(f"train-{target}", ranking_summary(best, rows[best]["metrics"]))


def _prune_params(p: Params):
    if p.prune is None:
        raise UserError("params.yaml has no `prune` section (slot, strategies, percents): the prune stages need one (see params-study.yaml)")
    return p.prune


def _variant_paths(slot: str, variant: str) -> tuple[Path, Path]:
    """(records file, report) of a pruned variant."""
    return PRUNED_DIR / slot / variant / "records.parquet", REPORTS_DIR / "prune" / slot / f"{variant}.json"


def prune(strategy: str, percent: int) -> None:
    """One pruned variant of `prune.slot`: the split's training side pruned by `strategy` to
    `percent`%, the test side whole, written as a records file that passes the records suite."""
    p = load_params()
    pp = _prune_params(p)
    slot = pp.slot
    if not 1 <= percent <= 100:
        raise UserError(f"--percent {percent}: a kept percentage is 1..100")
    variant = pruning.variant_name(strategy, percent)
    facts = data_facts(slot_data(slot))
    hw = _read_target(RECORDS_DIR / f"{slot}.target.json")
    table = StoreView(FEATURES_DIR, slot)  # metadata whole, numbers a fragment at a time
    pool_t, test = train_test(table, p.split.strategy, p.split.model_dump())  # only the training side is pruned
    presets: dict = {}  # without a preset, the Scout's own defaults
    if pp.scout:
        presets["family"], presets["params"] = p.model_spec(pp.scout)
    if pp.ensemble:
        presets["ensemble_family"], presets["ensemble_params"] = p.model_spec(pp.ensemble)
    scout = pruning.Scout(**presets, log=lambda m: _echo(f"prune {variant} scout {m}"))
    t0 = time.perf_counter()
    kept = pruning.prune(strategy, pool_t, percent / 100.0, pp.seed, scout)
    prune_s = time.perf_counter() - t0
    out, report = _variant_paths(slot, variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # written and checked aside: `out` is whole or absent, never half
    n_records = pruning.write_variant_records(RECORDS_DIR / f"{slot}.parquet", set(kept) | set(test.frame["record_id"].astype(str)), partial)
    summary = validation.validate_records_file(partial, hw.id, REPORTS_DIR / "prune" / slot / variant / "data_docs")
    print(summary.readable())
    if not summary.success:
        partial.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        raise UserError(f"pruned variant {variant} of {slot} failed the records suite: {summary.failed_expectations()}; see reports/prune/{slot}/{variant}/data_docs")
    os.replace(partial, out)
    kept_share = len(kept) / max(len(pool_t), 1)
    write_json(report, {"slot": slot, "target": hw.id, "variant": variant, "strategy": strategy, "kept_percent": percent, "seed": pp.seed,
                        "split": p.split.strategy, "pool_records": len(pool_t), "kept_records": len(kept), "test_records": len(test),
                        "records": n_records, "kept_share": round(kept_share, 4), "records_md5": md5_file(out),
                        "source_features_md5": facts["hash"], "validation": summary.to_dict(), "prune_seconds": round(prune_s, 2)})
    write_summary(f"prune-{variant}", {"success": summary.success, "rows": n_records, "kept_share": round(kept_share, 3)})
    _echo(f"{slot} {variant}: kept {len(kept)} of {len(pool_t)} training records (+{len(test)} test records, never pruned) -> {out}")


def train_pruned(strategy: str, percent: int) -> None:
    """Every model of prune.models (default train.models) trained on a pruned variant and
    registered for the slot's target with tags naming the variant; the best gets the alias
    <alias_prefix>-<variant>, which transfer.alias or tune.alias can name."""
    p = load_params()
    pp = _prune_params(p)
    slot = pp.slot
    variant = pruning.variant_name(strategy, percent)
    records_file, report = _variant_paths(slot, variant)
    if not records_file.exists() or not report.exists():
        raise MissingDataError(f"{records_file}: no pruned variant {variant} of {slot} (dvc repro prune@{strategy}-{percent}, or dvc pull it)")
    made = json.loads(report.read_text())
    variant_md5 = md5_file(records_file)
    if not made["validation"]["success"] or made["records_md5"] != variant_md5:
        raise UserError(f"{records_file} is not the variant validated in {report} (re-run: dvc repro prune)")
    hw = _read_target(RECORDS_DIR / f"{slot}.target.json")
    table = StoreView(FEATURES_DIR, slot)  # metadata whole, numbers a fragment at a time
    ids = pq.read_table(records_file, columns=["record_id"]).column("record_id").to_pylist()
    train_t, test_t = train_test(table, p.split.strategy, p.split.model_dump())
    train_t = pruning.kept_table(train_t, pruning.rows_of(train_t, ids))  # labelled from the kept records alone
    if len(test_t) != len(pruning.rows_of(test_t, ids)):
        raise UserError(f"{records_file} lacks test records of the {p.split.strategy} split (made under another split? re-run: dvc repro prune)")
    sp = p.split
    tags = {"train_data_hash": variant_md5, "eval_data_hash": split_evaluation_set(made["source_features_md5"], sp.strategy, sp.test_fraction, sp.seed), "validation_passed": True,
            "dataset_variant": variant, "prune_strategy": strategy, "prune_kept_percent": percent, "prune_seed": made["seed"], "dataset_md5": variant_md5,
            "dataset_path": str(records_file)}
    trained_on = (f"the pruned variant {variant} of {slot} ({len(train_t)} training records, {made['kept_share']:.0%} of the {sp.strategy} training side; "
                  f"DVC md5 {variant_md5}), tested on the unpruned test side")
    rows = _train_and_register(p, pp.models or p.train.models, train_t, test_t, target=hw.id, models_dir=MODELS_DIR / "pruned" / slot / variant,
                               run_prefix=f"train-{slot}-{variant}", trained_on=trained_on, tags=tags, params={"dataset_variant": variant})
    best = pick_candidate({k: r["metrics"] for k, r in rows.items()}, p.train.candidate_metrics, random_floor(test_t),
                          tree_model_keys(model_specs(p, rows)))
    alias = f"{pp.alias_prefix}-{variant}"
    registry.set_alias(hw.id, alias, rows[best]["version"])
    _echo(f"{slot} {variant}: '{alias}' -> v{rows[best]['version']} ({best})")
    write_json(REPORTS_DIR / "prune" / slot / f"{variant}.train.json", {"registered_model": registry.model_name(hw.id), "alias": alias, "variant": variant,
                                                                        "dataset_md5": variant_md5, "best": {"model": best, **rows[best]}, "models": rows})
    write_summary(f"train_pruned-{variant}", ranking_summary(best, rows[best]["metrics"]))


def _transfer_sources(p: Params, data) -> list[str]:
    """`transfer.sources`, or every train target of another platform of the same kind."""
    if isinstance(p.transfer.sources, list):
        return p.transfer.sources
    return [t for t in p.train.targets if t.split(".")[0] != data.platform_id and describe_target(t).kind == data.kind]


def transfer() -> None:
    """Models of other platforms, pulled from the registry by alias, transferred to the target
    slot (default: this machine): zero-shot, blended, pooled (trained on the source platforms'
    records), fine-tuned on k% of the target's records, against models trained from scratch on
    the same k%. The one that measures best on the target's test side, when a bootstrap can tell
    it from the pooled default, else that default, is registered for the target (`transferred`,
    and `candidate` unless the pipeline trains that target itself)."""
    p = load_params()
    tp = p.transfer
    peers = model_specs(p, tp.peers)
    facts = data_facts(slot_data(tp.target))  # before any model: data that failed validation is neither trained on nor registered
    data = StoreView(FEATURES_DIR, tp.target)  # metadata whole, numbers a fragment at a time
    target_id = data.target_id
    names = _transfer_sources(p, data)
    if not names:
        raise UserError(f"transfer to {tp.target} ({target_id}): no source: every train target is on platform {data.platform_id}")
    sources, pulled = {}, {}
    for name in names:
        model, resolved = registry.load_by_alias(name, tp.alias, fallback=registry.CANDIDATE, expected_feature_schema=FEATURE_SCHEMA_VERSION)
        _echo(resolved.message)
        sources[name] = model
        pulled[name] = {"name": resolved.name, "version": resolved.version, "alias": resolved.alias, "family": model.family}
    pooled = {}
    source_slots = [n for n in names if n in p.targets]
    if tp.pooled and source_slots:
        records = pool([StoreView(FEATURES_DIR, s) for s in source_slots], "pooled")
        trained: dict = {}
        specs = {key: ModelSpec.preset(p, key) for key in tp.pooled}
        # single models first, then the blends, which reuse them (not trained again); `pooled` keeps
        # the params' order: its first is the default a new machine gets
        for key in sorted(specs, key=lambda k: family_class(specs[k].family).member_presets):
            blended = reuse_trained(specs[key], trained, records)
            _echo(f"transfer: {key} {'blended from' if blended else 'trained on'} {len(records)} records of {', '.join(source_slots)} pooled")
            trained[key] = blended or fit(specs[key], records)
        pooled = {key: trained[key][0] for key in tp.pooled}
    study = transfer_study(sources, data, tp.fractions, peers, test_fraction=tp.test_fraction, seed=tp.seed, log=_echo, pooled=pooled,
                           select_metrics=p.train.candidate_metrics, confidence=tp.confidence)
    curves = study.curves
    learning_curves(curves, f"transfer to {tp.target} ({target_id})", REPORTS_DIR / "transfer" / "learning_curve.png")
    report = {"target": tp.target, "target_id": target_id, "sources": pulled, "pooled_from": source_slots if pooled else [], "choice": study.choice, "registered": None}
    _echo(f"transfer: serving {study.choice['approach']} (k={study.choice.get('k')}): {study.choice['reason']}")
    if study.model is not None:
        report["registered"] = _register_transferred(p, data, facts, study.choice, pulled, study.model)
    write_json(REPORTS_DIR / "metrics" / "transfer.json", curves)
    write_json(REPORTS_DIR / "transfer" / "study.json", report)
    c = study.choice
    write_summary("transfer", ranking_summary(c["approach"] + (f" k={c['k']}%" if c.get("k") not in (None, 0, "0") else ""), c))
    for approach, by_k in curves.items():
        _echo(f"{approach}: " + ", ".join(f"k={kk}: pca {r['pca']:.3f} top5 {r['top5']:.3f}" for kk, r in by_k.items()))


TRANSFERRED = "transferred"


def _register_transferred(p: Params, data, facts: dict, choice: dict, pulled: dict, model) -> dict:
    """Register the chosen model for the target's real id, aliased `transferred`; it becomes
    `candidate` too unless the pipeline trains this target itself (its train stage chooses
    that one), so a new machine's first model is the one its measurements chose."""
    tp = p.transfer
    target_id = data.target_id
    approach, k = choice["approach"], str(choice.get("k", "0"))
    out = MODELS_DIR / "transferred" / tp.target
    model.metadata.target = target_id
    model.save(out)
    metrics = {m: float(choice[m]) for m in ("pca", "top1", "top5")}
    source_ref = chosen_sources(approach, pulled)
    data_tags = {"train_data_hash": facts["hash"], "eval_data_hash": transfer_evaluation_set(facts["hash"], tp.test_fraction, tp.seed),
                 "validation_passed": facts["validation_passed"]}
    version = registry.register_transferred(out, target_id, approach=approach, k=k, reason=choice["reason"], chosen_on=f"the transfer's test side of {tp.target}",
                                            metrics=metrics, family=model.family, objective=model.metadata.objective, feature_schema=data.feature_schema,
                                            source_ref=source_ref, data_tags=data_tags, experiment=p.registry.experiment, git_commit=git_commit(),
                                            alias=TRANSFERRED, input_example=example_frame(data))
    aliases = [TRANSFERRED]
    if becomes_candidate(target_id, tp.target, p.train.targets):
        registry.set_alias(target_id, registry.CANDIDATE, version)
        aliases.append(registry.CANDIDATE)
    _echo(f"registered {registry.model_name(target_id)} v{version} ({approach}, k={k}%) as {', '.join(aliases)}")
    return {"name": registry.model_name(target_id), "version": version, "approach": approach, "source": source_ref, "k_percent": k, "aliases": aliases,
            "metrics": metrics}


def _split_study(p: Params, model_keys, splits, only, pool_platforms: bool = False) -> tuple[dict, dict, dict]:
    """`run_study` over every slot's feature store: each slot's metadata whole, its numbers read a
    fragment at a time by the models that stream (MetaSchedule features, TVM XGBoost's input,
    are read whole for that model alone). `only`: the slots evaluated (None: all)."""
    specs = model_specs(p, model_keys)
    datasets = {slot: StoreView(FEATURES_DIR, slot) for slot in p.targets}
    result = run_study(datasets, splits, specs, p.split.model_dump(), progress=lambda m: _echo(f"evaluate {m}"), only=only, pool_platforms=pool_platforms)
    for t, by_split in result[0].items():
        for sp, by_model in by_split.items():
            _echo(f"{t} {sp}: " + ", ".join(f"{m} pca={r['pca']:.3f} top5={r['top5']:.3f}" for m, r in by_model.items()))
    return result


def evaluate() -> None:
    """Every model under every split strategy, per dataset slot (DVC metrics), plus per-network
    tables, plots of top-k per network and PCA per split, and one task's ranking scatter."""
    p = load_params()
    metrics, per_network, preds = _split_study(p, p.evaluate.models, p.evaluate.splits, p.evaluate.targets or None)
    write_json(REPORTS_DIR / "metrics" / "evaluate.json", metrics)
    write_json(REPORTS_DIR / "metrics" / "per_network.json", per_network)
    write_summary("evaluate", evaluation_summary(metrics))
    write_study_reports(metrics, per_network, preds, REPORTS_DIR / "plots", REPORTS_DIR / "figures")


def study(model_keys: list[str], splits: list[str], slots: list[str] | None, out: Path, pool_platforms: bool = False) -> None:
    """The split study for chosen models on the current features (an ablation beside `evaluate`:
    reads params.yaml, writes only `out`). `pool_platforms`: train every split on all slots of
    the evaluated one's kind (`evaluation.joint_training_side`)."""
    p = load_params()
    for split in splits:  # a typo: one line now, not after the stores are opened and models trained
        hardware_split(split)
    unknown = sorted(set(slots or []) - set(p.targets))
    if unknown:
        raise UserError(f"--slots: {', '.join(unknown)} not a slot of params.yaml's targets ({', '.join(p.targets)})")
    out = safeio.check_output_path(out)
    metrics, _, _ = _split_study(p, model_keys, splits, slots, pool_platforms)
    write_json(out, metrics)


def tune() -> None:
    """Tune the network on this machine with the registry model pulled by alias and with TVM's
    XGBoost, on the same budget."""
    p = load_params()
    tp = p.tune
    target_id = _read_target(HOST_FILE).id if tp.target == HOST else tp.target
    hw = hardware.resolve_target(target_id)
    model, resolved = registry.load_by_alias(hw.id, tp.alias, fallback=registry.CANDIDATE, expected_feature_schema=FEATURE_SCHEMA_VERSION)
    _echo(resolved.message)
    cfg = TuneConfig(**tp.model_dump(exclude={"target", "alias", "mode"}))  # the run's budget without the routing
    info = {"name": resolved.name, "version": resolved.version, "alias_requested": tp.alias, "alias_used": resolved.alias, "family": model.family}
    report = compare_cost_models(hw, cfg, model, info, Path(".tensorcost/tune") / hw.id, p.measure, log=_echo, mode=tp.mode)
    write_json(REPORTS_DIR / "tune" / "report.json", report)
    _echo(json.dumps(report["summary"], indent=1))
