"""The `tensorcost` command line (Typer). Thin: every command calls into the rooms.

A user error (unknown target, bad params, missing data) prints one line and exits 2; `--debug`
or TENSORCOST_DEBUG=1 shows its traceback (`main`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Learned cost models of tensor programs.", pretty_exceptions_enable=False)
stage_app = typer.Typer(no_args_is_help=True, help="Pipeline stages (run by `dvc repro`; see dvc.yaml).")
registry_app = typer.Typer(no_args_is_help=True, help="The MLflow model registry.")
dataset_app = typer.Typer(no_args_is_help=True, help="Datasets of measured programs.")
platform_app = typer.Typer(invoke_without_command=True, help="This machine as a hardware platform of the dataset.")
services_app = typer.Typer(no_args_is_help=True, help="The team stack on this machine: MLflow on PostgreSQL, an SSH DVC remote, a TVM RPC tracker.")
app.add_typer(dataset_app, name="dataset")
app.add_typer(stage_app, name="stage")
app.add_typer(registry_app, name="registry")
app.add_typer(platform_app, name="platform")
app.add_typer(services_app, name="services")
params_app = typer.Typer(no_args_is_help=True, help="params.yaml, edited in place with its comments kept.")
app.add_typer(params_app, name="params")


@params_app.command("set")
def params_set(key: str = typer.Argument(..., help="dotted key, e.g. measure.rpc"),
               value: str = typer.Argument(..., help="a YAML value, e.g. \"{tracker: 'host:9190', key: mykey}\" or null"),
               file: str = typer.Option("params.yaml", "--file", help="the params file")) -> None:
    """Set one value of params.yaml with a round-trip YAML editor (every comment and the order
    of the rest stay); the result is checked as params before it is written."""
    from .params_io import set_param

    old = set_param(file, key, value)
    typer.echo(f"{file}: {key} = {value}" + (f" (was {old})" if old else ""))

SLOT = typer.Option(..., "--target", help="dataset slot: a target id, or `host` (this machine)")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show the traceback of a user error too (or TENSORCOST_DEBUG=1)")) -> None:
    if debug:
        os.environ["TENSORCOST_DEBUG"] = "1"


# -- pipeline stages (dvc.yaml) ------------------------------------------------------------------

STRATEGY = typer.Option(..., help="pruning strategy (prune.strategies): random, random_tasks, attention_loss, kcenter, uncertainty")
PERCENT = typer.Option(..., help="kept percent of the training side (prune.percents)")
TRAIN_TARGET = typer.Option(..., help="target id (train.targets)")

# `tensorcost stage <command>` (what dvc.yaml runs) -> (the stages function, its options in call
# order as (name, type, typer option), help). The commands are made from this table: no shims.
STAGE_COMMANDS: dict[str, tuple[str, tuple, str]] = {
    "host": ("host", (), "Resolve this machine's target (host.target) into data/host/target.json."),
    "registry": ("registry_location", (), "Record which model registry the stages register into."),
    "collect": ("collect", (), "Measure a sample of the bundled tasks on this machine (programs no platform measured: host.programs)."),
    "records": ("records", (("target", str, SLOT),), "A slot's canonical records under their real target id."),
    "validate": ("validate", (("target", str, SLOT),), "Great Expectations checks on a slot's records."),
    "featurize": ("featurize", (("target", str, SLOT),), "A slot's feature store, published when the features suite passes."),
    "msfeatures": ("msfeatures", (("target", str, SLOT),), "MetaSchedule's own per-store features of a slot's records (for TVM's XGBoost)."),
    "train": ("train", (("target", str, TRAIN_TARGET),), "Train and register every model of train.models for TARGET."),
    "prune": ("prune", (("strategy", str, STRATEGY), ("percent", int, PERCENT)),
              "Write the pruned variant STRATEGY-PERCENT of prune.slot (test records never pruned)."),
    "train-pruned": ("train_pruned", (("strategy", str, STRATEGY), ("percent", int, PERCENT)),
                     "Train and register prune.models on the pruned variant STRATEGY-PERCENT."),
    "transfer": ("transfer", (), "Transfer registry models of other platforms to transfer.target (default: this machine)."),
    "evaluate": ("evaluate", (), "Every model under every split, per slot (reports/metrics, plots, figures)."),
    "tune": ("tune", (), "Tune the network with this machine's registry model and with TVM's XGBoost, same budget."),
}


def _add_stage_command(command: str, function: str, options: tuple, help_text: str) -> None:
    import inspect

    def run(**kwargs) -> None:
        from . import stages  # imported on use: `tensorcost --help` stays fast

        getattr(stages, function)(*(kwargs[name] for name, _, _ in options))

    run.__signature__ = inspect.Signature([inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind)
                                           for name, kind, opt in options])
    run.__name__, run.__doc__ = f"stage_{function}", help_text
    stage_app.command(command)(run)


for _stage_command, (_stage_function, _stage_options, _stage_help) in STAGE_COMMANDS.items():
    _add_stage_command(_stage_command, _stage_function, _stage_options, _stage_help)


# -- hardware ------------------------------------------------------------------------------------

@app.command("targets")
def targets(as_json: bool = typer.Option(False, "--json", help="a list of {id, platform, kind, variant, source, available_here}")) -> None:
    """Targets measurable here (source `host`) and targets of the bundled dataset (`bundled`)."""
    from . import dataset, hardware

    here = hardware.host_targets()
    bundled = set(dataset.bundled_targets())
    rows = [{"id": t, "platform": t.split(".")[0], "kind": here[t].kind if t in here else hardware.describe_target(t).kind, "variant": t.split(".", 1)[1],
             "source": "bundled" if t in bundled else "host", "available_here": t in here} for t in sorted(set(here) | bundled)]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        typer.echo(f"{r['id']:32s} {r['kind']:4s} {r['source']:8s} {'measurable here' if r['available_here'] else ''}")


@platform_app.callback()
def platform_show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The detected platform of this machine and its features (`platform add`: grow the dataset)."""
    if ctx.invoked_subcommand is not None:
        return
    from . import hardware

    p = hardware.host_platform()
    gpu = hardware.detect_gpu_platform() if hasattr(hardware, "detect_gpu_platform") else None
    doc = {"cpu": p.to_dict(), "in_catalog": p.id in hardware.platforms(), "variants": sorted(t.variant.id for t in hardware.host_targets().values() if t.platform.id == p.id),
           "gpu": gpu.to_dict() if gpu is not None else None}
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    typer.echo(f"platform   {p.id}  ({'in the catalog' if doc['in_catalog'] else 'new: `tensorcost platform add` measures it into the dataset'})")
    for key in ("vendor", "model_name", "microarch", "cores", "clock_ghz", "l1d_kb", "l2_kb", "l3_kb"):
        typer.echo(f"  {key:11s}{getattr(p, key)}")
    typer.echo(f"  isa        {' '.join(p.isa)}")
    typer.echo(f"  variants   {' '.join(doc['variants']) or '(none: not an x86-64 CPU with SSE4.2)'}")
    if gpu is not None:
        typer.echo(f"gpu        {gpu.id}  ({gpu.model_name}, {gpu.cores} SMs, compute {gpu.compute_capability})")


@platform_app.command("add")
def platform_add(
    variants: list[str] = typer.Option(["avx2-t1"], "--variant", help="code-generation variant(s) to measure, e.g. avx2-t1 avx512-t2"),
    noise_fraction: float = typer.Option(0.05, help="share of the programs measured a second time (the noise study; 0: none)"),
    params: str = typer.Option("docs/dataset-params.yaml", help="file whose `measure` section is the protocol (the bundled dataset's)"),
    profile: str = typer.Option("study", help="study: add its targets to params-study.yaml (`make study`); default: to params.yaml (every `make run`, about a minute per slot)"),
    dvc: bool = typer.Option(True, help="with --profile default: run the slots' data stages and `dvc push` (when a remote is configured)"),
    commit: bool = typer.Option(True, help="commit the platform's files, the profile's params file and dvc.lock"),
    train: bool = typer.Option(False, help="also add its targets to the profile's train.targets (a registered model per target)"),
    programs_per_task: int = typer.Option(0, help="measure only the first N programs of each task (0: all; 104: the set before its tasks grew, about half the time)"),
) -> None:
    """Measure the bundled program set on this machine and add it to the dataset as a platform."""
    from . import newplatform

    report = newplatform.add_host_platform(variants, noise_fraction, Path(params), run_dvc=dvc, commit=commit, train=train, log=lambda m: typer.echo(m, err=True), profile=profile,
                                           programs_per_task=programs_per_task)
    typer.echo(json.dumps(report, indent=1))


# -- datasets ------------------------------------------------------------------------------------

@app.command("import-tenset")
def import_tenset_cmd(
    paths: list[str] = typer.Argument(..., help="record files or directories (TenSet measure_records/<platform>/ layout)"),
    out: str = typer.Option(..., "--out", help="canonical records Parquet file to write"),
    target: Optional[str] = typer.Option(None, help="target id for every record (default: <platform>.tenset from the directory or target string)"),
    workers: int = typer.Option(0, help="parallel parser processes (0 = all cores)"),
    reference_parser: bool = typer.Option(False, "--reference-parser", help="parse every line with the reference path (orjson), not the C scanner"),
) -> None:
    """Import auto_scheduler / TenSet measure records (v0.2-v0.6) into the canonical table.

    Malformed lines are reported as path:line: reason, skipped, and written to OUT.quarantine.jsonl.
    Exits 0 when something was imported. Never unpickles anything.
    """
    from .records.importer import import_tenset

    report = import_tenset(paths, out, target=target, workers=workers or None, fast=not reference_parser)
    for ex in report.examples:
        typer.echo(ex, err=True)
    if report.skipped:
        typer.echo(f"skipped {report.skipped} malformed line(s) of {report.lines}; written to {out}.quarantine.jsonl", err=True)
    typer.echo(json.dumps({"files": report.files, "bad_files": report.bad_files, "lines": report.lines, "imported": report.imported, "skipped": report.skipped, "comments": report.comments,
                           "fast_path_lines": report.fast_lines, "out": out}))
    if report.imported == 0:
        typer.echo("error: nothing imported", err=True)
        raise typer.Exit(1)


@dataset_app.command("stats")
def dataset_stats(
    paths: Optional[list[str]] = typer.Argument(None, help="canonical records Parquet files or directories (default: the bundled dataset)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Per-target counts of tasks, networks, valid and error records."""
    from . import dataset

    result = dataset.stats(paths)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dataset")
    for col in ("target", "tasks", "networks", "valid records", "error records"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for t, s in result["targets"].items():
        table.add_row(t, str(s["tasks"]), str(s["networks"]), str(s["valid_records"]), str(s["error_records"]))
    table.add_row("total", "", "", str(result["total_valid_records"]), "")
    Console().print(table)


@dataset_app.command("agreement")
def dataset_agreement(
    targets: Optional[list[str]] = typer.Argument(None, help="bundled target ids (default: every bundled target)"),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table instead of JSON"),
) -> None:
    """Rank agreement of the same programs between each pair of targets (how far apart they are);
    pairs that share no program (a GPU's program set) are left out."""
    from . import dataset

    result = dataset.cross_target_agreement(dataset.bundled_tables(targets or dataset.bundled_targets()))
    typer.echo(dataset.agreement_markdown(result) if markdown else json.dumps(result, indent=1))


@dataset_app.command("noise")
def dataset_noise(
    targets: Optional[list[str]] = typer.Argument(None, help="bundled target ids (default: every bundled target with a noise file)"),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table instead of JSON"),
) -> None:
    """Each target's pass-to-pass noise next to its rank agreement with the other targets, on the
    programs of its noise sample (docs/DATASET.md)."""
    from . import dataset

    result = dataset.noise_and_platforms(targets or dataset.bundled_targets())
    typer.echo(dataset.noise_markdown(result) if markdown else json.dumps(result, indent=1))


@dataset_app.command("synth-tenset")
def dataset_synth_tenset(
    rows: int = typer.Option(..., "--rows", help="records to write"),
    out: str = typer.Option(..., "--out", help="directory: OUT/measure_records/synthetic-<platform>/<task>.json"),
    source_target: str = typer.Option("zen5-2c.avx2-t1", "--source-target", help="bundled target whose programs, latencies and noise are copied"),
    seed: int = typer.Option(0, "--seed"),
    programs_per_task: Optional[int] = typer.Option(None, "--programs-per-task", help="records per task file (default: the task's bundled programs)"),
) -> None:
    """Write SYNTHETIC TenSet-format record files of any size from the bundled programs (scale
    benchmark and tests only: they import as target synthetic-<platform>.tenset, never as measurements)."""
    from .synthetic_tenset import write_synthetic_tenset

    typer.echo(json.dumps(write_synthetic_tenset(out, rows, source_target=source_target, seed=seed, programs_per_task=programs_per_task), indent=1))


@dataset_app.command("remeasure")
def dataset_remeasure(
    target: str = typer.Option(..., help="a bundled target id of this machine's platform"),
    out: str = typer.Option(..., help="Parquet file for the second measurements"),
    fraction: float = typer.Option(0.05),
    seed: int = typer.Option(0),
    params: str = typer.Option("docs/dataset-params.yaml", help="file whose `measure` section is the protocol"),
) -> None:
    """Measure a random fraction of a bundled target's programs again; report the differences."""
    from . import collect, dataset, hardware, records
    from .params import load_collection_params

    hw = hardware.resolve_target(target)
    tasks, _ = collect.read_tasks(dataset.programs_dir(hw.kind))
    first = dataset.relabel(records.read_records(dataset.bundled_records_path(target)), target)
    second = collect.remeasure(first, tasks, hw, fraction, seed, load_collection_params(params).measure)
    records.write_records(second, out)
    typer.echo(json.dumps({"target": target, **dataset.relative_differences(first, second)}, indent=1))


@dataset_app.command("sample")
def dataset_sample(
    params: str = typer.Option(..., help="collection params (docs/dataset-params.yaml): zoo, sample, targets, measure"),
    work: str = typer.Option(..., help="work directory: the task set goes to WORK/data/programs"),
) -> None:
    """Sample a new program set once (tasks of the zoo's networks, random programs of each)."""
    from tqdm import tqdm

    from . import collect
    from .params import load_collection_params

    cp = load_collection_params(params)
    with tqdm(total=cp.sample.max_tasks if cp.sample else 0, desc="sample programs", unit="task") as bar:
        def chosen(n: int) -> None:
            bar.total = n
            bar.refresh()

        typer.echo(json.dumps(collect.sample_task_set_from(cp, Path(work) / "data/programs", bar.update, chosen)))


@dataset_app.command("collect")
def dataset_collect(
    work: str = typer.Option(..., help="work directory of `dataset sample`"),
    target: str = typer.Option(..., help="a target of this machine, e.g. host.avx2-t1 or zen4-2c.avx2-t1; with measure.rpc: remote.avx2-t1"),
    params: str = typer.Option("docs/dataset-params.yaml", help="file whose `measure` section is the protocol"),
    task_limit: Optional[int] = typer.Option(None, help="measure only the first N tasks (interleave targets in long runs)"),
) -> None:
    """Measure a sampled program set on TARGET (resumable) into WORK/data/raw/<target>/.

    With `measure.rpc` in the params, runs go to that tracker's servers of the key and TARGET is
    `remote.<variant>` (or their platform's id): records carry the platform the servers report."""
    from . import collect, hardware
    from .params import load_collection_params

    cfg = load_collection_params(params).measure
    if cfg.rpc is not None:
        from . import rpc

        hw = rpc.resolve_remote(cfg.rpc, target)
        if hw.kind == "cpu" and hw.platform.id not in hardware.platforms():
            # As `tensorcost platform add` does for a new host: the catalog learns the machine,
            # so its records can be featurized and packed like any other platform's.
            from .newplatform import add_to_catalog

            add_to_catalog(hw.platform)
            typer.echo(f"platform {hw.platform.id} ({hw.platform.model_name}) is new: added to the catalog", err=True)
    else:
        hw = hardware.resolve_target(target)
    tasks, programs, meta = collect.load_task_set(Path(work) / "data/programs")
    collect.check_task_set_kind(meta, hw, Path(work) / "data/programs")
    typer.echo(json.dumps({"target": hw.id, **collect.collect_target(tasks, programs, hw, Path(work) / "data/raw" / hw.id, cfg, task_limit)}), err=True)


@dataset_app.command("pack")
def dataset_pack(
    work: str = typer.Option(..., help="work directory of `dataset sample` and `dataset collect`"),
    targets: list[str] = typer.Option(..., "--target", help="measured target ids"),
    kind: str = typer.Option("cpu", help="the program set's kind: cpu or gpu"),
    dest: str = typer.Option("data/bundled", help="the bundled dataset's root"),
    merge: bool = typer.Option(False, "--merge", help="add the run's new tasks to the existing program set and records; grow the tasks it extended (docs/DATASET.md)"),
) -> None:
    """Pack a collection run into the bundled layout (platform records, the program set)."""
    from . import dataset, hardware

    ids = [hardware.resolve_target(t).id if t.startswith("host.") else t for t in targets]
    report = dataset.pack(Path(work), ids, kind, Path(dest), merge=merge)
    typer.echo(json.dumps(report, indent=1))
    if report.get("tasks_not_measured_whole"):
        typer.echo(f"{len(report['tasks_not_measured_whole'])} task(s) to extend not measured whole yet, left out: run `tensorcost dataset collect` "
                   f"on {work} again, then pack again", err=True)


@app.command("study")
def study(
    models: str = typer.Option(..., help="comma-separated model presets of params.yaml, e.g. attention,attention_concat"),
    splits: str = typer.Option("within_task,by_network", help="comma-separated split strategies: within_task, by_task, by_network, by_family, by_hardware, by_hardware+<one of the first four> (the platform and that split's test programs unseen at once)"),
    out: str = typer.Option(..., help="JSON file for {slot: {split: {model: metrics}}}"),
    slots: Optional[str] = typer.Option(None, help="comma-separated slots to evaluate (default: every slot of params.yaml; the others still train by_hardware models)"),
    pool_platforms: bool = typer.Option(False, "--pool-platforms", help="train every split on its training side of all slots of the evaluated slot's kind (joint training over hardware; by_hardware does so anyway)"),
) -> None:
    """Run the split study for chosen models on the current features (an ablation beside the
    pipeline's evaluate stage; reads params.yaml, writes only OUT)."""
    from . import stages

    stages.study([k.strip() for k in models.split(",") if k.strip()], [x.strip() for x in splits.split(",") if x.strip()],
                 [x.strip() for x in slots.split(",") if x.strip()] if slots else None, Path(out), pool_platforms=pool_platforms)


def _network_report_path(network: str, out: Path) -> Path:
    """`--out` of `tune` / `score`, checked: never the network's own file (one line if it is)."""
    from .safeio import check_output_path

    source = network.partition(":")[0]
    return check_output_path(out, [source] if Path(source).exists() else [])


@app.command("tune")
def tune(
    network: str = typer.Option(..., help="my_model.py:build (a function returning a torch.nn.Module), model.onnx, or a zoo network"),
    input_shape: Optional[str] = typer.Option(None, help="the input's shape, e.g. 1,3,224,224 (required for a PyTorch module)"),
    target: str = typer.Option("host", help="target id; host: this machine's (as `make run` resolved it)"),
    alias: str = typer.Option("champion", help="registry alias of the model (champion falls back to candidate)"),
    trials_per_task: int = typer.Option(16, min=1, help="trials for each task of the network"),
    trials: Optional[int] = typer.Option(None, min=1, help="the whole budget instead, spread over the tasks"),
    compare_xgb: bool = typer.Option(False, "--compare-xgb", help="tune again with TVM's XGBoost cost model on the same budget"),
    mode: str = typer.Option("frozen", help="frozen: the registry model alone; online: also fine-tuned on the search's measurements"),
    architecture: Optional[str] = typer.Option(None, help="the network's architecture family (default: a family of its own)"),
    out: Path = typer.Option(Path("tune-report.json"), help="the report (JSON)"),
) -> None:
    """Tune your own network on this machine with the registry's cost model, compile it with the
    tuned schedules and time it; the report says how long it runs (and with TVM's XGBoost)."""
    from .reports import write_json
    from .tuning import tune_user_network

    out = _network_report_path(network, out)
    report = tune_user_network(network, input_shape, target=target, alias=alias, trials_per_task=trials_per_task, trials=trials,
                               compare_xgb=compare_xgb, mode=mode, architecture=architecture, log=typer.echo)
    write_json(out, report)
    s = report["summary"]
    line = f"{report['network']} on {report['target']}: untuned {s['untuned_network_ms']:.3f} ms, tuned with tensorcost {s['tensorcost_network_ms']:.3f} ms"
    if "tvm_xgb_network_ms" in s:
        line += f", with TVM's XGBoost {s['tvm_xgb_network_ms']:.3f} ms"
    typer.echo(f"{line} (median of {report['untuned_network_latency_ms']['repeats']} runs); report: {out}")


@app.command("score")
def score(
    network: str = typer.Option(..., help="my_model.py:build, model.onnx, or a zoo network"),
    input_shape: Optional[str] = typer.Option(None, help="the input's shape, e.g. 1,3,224,224 (required for a PyTorch module)"),
    target: str = typer.Option("host", help="target id; host: this machine's (as `make run` resolved it)"),
    model: Optional[list[str]] = typer.Option(None, "--model", help="alias or version (3, v3) to score; repeat it (default: champion and candidate)"),
    programs_per_task: int = typer.Option(16, min=2, help="random programs measured for each task"),
    max_tasks: int = typer.Option(6, min=1, help="the network's largest tasks measured"),
    xgb: bool = typer.Option(True, "--xgb/--no-xgb", help="also score TVM's XGBoost cost model trained on the repository's data"),
    architecture: Optional[str] = typer.Option(None, help="the network's architecture family (default: a family of its own)"),
    out: Path = typer.Option(Path("score-report.json"), help="the report (JSON)"),
) -> None:
    """Measure a sample of your network's programs on this machine and report how well registered
    models rank them (PCA, top-1, top-5) against random and TVM's XGBoost."""
    from .network_score import score_network
    from .reports import write_json

    out = _network_report_path(network, out)
    report = score_network(network, input_shape, target=target, models=model or None, programs_per_task=programs_per_task,
                           max_tasks=max_tasks, xgb=xgb, architecture=architecture, log=typer.echo)
    write_json(out, report)
    rows = [(k, v) for k, v in report["models"].items()] + [("random (expected)", report["random"])]
    if report.get("tvm_xgb"):
        rows.append(("TVM's XGBoost", report["tvm_xgb"]))
    typer.echo(f"{report['network']} on {report['target']}: {report['records']} programs of {report['tasks']} tasks")
    for name, m in rows:
        typer.echo(f"  {name:<28} PCA {m['pca']:.3f}  top-1 {m['top1']:.3f}  top-5 {m['top5']:.3f}")
    typer.echo(f"report: {out}")


# -- registry ------------------------------------------------------------------------------------

@app.command("promote")
def promote(
    target: str = typer.Option(..., help="target id, or host (this machine's)"),
    version: Optional[str] = typer.Option(None, help="version to promote, 3 or v3 (default: the candidate)"),
    min_gain: float = typer.Option(0.0, help="required gain of PCA, top-1 and top-5 over the champion (negative: tolerated drop)"),
    rollback: bool = typer.Option(False, "--rollback", help="restore the previous champion instead"),
) -> None:
    """Move the `champion` alias to a version if its gates pass; refusals say why (exit 1)."""
    from . import registry

    target = _registry_target(target)
    res = registry.rollback(target) if rollback else registry.promote(target, version, min_gain)
    if rollback:
        typer.echo(f"rolled back {registry.model_name(target)}: champion is version {res.version} again (was {res.previous})")
    elif res.promoted:
        typer.echo(f"promoted {registry.model_name(target)} version {res.version} to champion (previous: {res.previous or 'none'})")
    else:
        typer.echo(f"refused: {registry.model_name(target)} version {res.version}: {res.reason}", err=True)
        raise typer.Exit(1)


@registry_app.command("history")
def registry_history(target: str = typer.Option(..., help="target id, or host"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Every promotion, refusal and rollback of TARGET's champion, oldest first."""
    from . import registry

    target = _registry_target(target)
    events = registry.history(target)
    if as_json:
        typer.echo(json.dumps(events, indent=1))
        return
    if not events:
        typer.echo(f"no promotion history for {registry.model_name(target)}")
    for e in events:
        prev = f" (previous {e['previous']})" if e["previous"] else ""
        typer.echo(f"{e['time']}  {e['action']:8s} v{e['version']}{prev}  {e['reason']}  [{e['actor']}]")


@registry_app.command("list")
def registry_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Per target: champion and candidate with their metrics."""
    from . import registry

    rows = registry.list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"registry ({registry.tracking_uri()})")
    for col in ("target", "champion", "candidate"):
        table.add_column(col)

    def fmt(v):
        if not v:
            return "-"
        return f"v{v['version']} {v.get('model_key') or v.get('model_family', '')} pca={float(v.get('pca', 'nan')):.3f} top5={float(v.get('top5', 'nan')):.3f} ({v.get('split', '')})"

    for r in rows:
        table.add_row(r["target"], fmt(r["champion"]), fmt(r["candidate"]))
    Console().print(table)


def _registry_target(target: str) -> str:
    """A target id, or `host`: this machine's target as the pipeline resolved it (data/host/target.json)."""
    if target != "host":
        return target
    from .errors import UserError
    from .tuning import repository_host_target

    target, path = repository_host_target()
    if target is None:
        raise UserError(f"--target host: {path} does not exist yet (`make run` resolves this machine's target); or give a target id")
    return target.id


@registry_app.command("show")
def registry_show(target: str = typer.Option(..., help="target id, or host (this machine's)"),
                  alias: str = typer.Option("champion", help="champion falls back to candidate; any other alias is looked up as given")) -> None:
    """Show the version behind an alias."""
    from . import registry

    target = _registry_target(target)
    r = registry.resolve(target, alias, fallback=registry.CANDIDATE if alias == registry.CHAMPION else None)
    typer.echo(r.message)
    typer.echo(json.dumps(r.tags, indent=1, sort_keys=True))


# -- the team stack (make services) ----------------------------------------------------------------

@services_app.command("up")
def services_up(
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="MLflow tracking server on PostgreSQL"),
    ssh: bool = typer.Option(True, "--ssh/--no-ssh", help="sshd serving a DVC remote (configured as this repo's `team` remote)"),
    rpc: bool = typer.Option(True, "--rpc/--no-rpc", help="TVM RPC tracker and one server of this machine"),
) -> None:
    """Start the stack (idempotent), print where each part listens, write the env file."""
    from .services import stack

    stack.up(mlflow=mlflow, ssh=ssh, rpc=rpc, repo=Path.cwd(), log=typer.echo)


@services_app.command("down")
def services_down() -> None:
    """Stop every part of the stack; its data (registry, artifacts, remote) is kept."""
    from .services import stack

    stack.down(log=typer.echo)


@services_app.command("status")
def services_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """What runs, where (exit 1 when nothing does)."""
    from .services import stack

    status = stack.status()
    typer.echo(json.dumps(status, indent=1) if as_json else "\n".join(f"{k:8s} {v}" for k, v in status.items()) or "nothing is running")
    if not status:
        raise typer.Exit(1)


def main() -> None:
    """The console entry point: user errors as one line and exit status 2."""
    import logging

    from .errors import UserError

    debug = os.environ.get("TENSORCOST_DEBUG") == "1" or "--debug" in sys.argv
    if not debug:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model load: noise in every command
        # MLflow and its migrations log whole tracebacks for store errors that the registry turns
        # into one line of its own (issue 28): --debug shows them
        for name in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        app()
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
