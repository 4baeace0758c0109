"""The `tensorcost` command line (Typer). Thin: every command calls into the rooms."""

from __future__ import annotations

import json
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Learned cost models of tensor programs.")
stage_app = typer.Typer(no_args_is_help=True, help="Pipeline stages (run by `dvc repro`; see dvc.yaml).")
registry_app = typer.Typer(no_args_is_help=True, help="The MLflow model registry.")
dataset_app = typer.Typer(no_args_is_help=True, help="Datasets of measured programs.")
app.add_typer(dataset_app, name="dataset")
app.add_typer(stage_app, name="stage")
app.add_typer(registry_app, name="registry")


@stage_app.command("sample")
def stage_sample() -> None:
    """Extract tasks from the zoo and sample programs (once, for all targets)."""
    from . import stages

    stages.sample()


@stage_app.command("collect")
def stage_collect(
    target: str = typer.Option(..., help="target id, see `tensorcost targets`"),
    task_limit: Optional[int] = typer.Option(None, help="measure only the first N tasks (interleave targets in long runs)"),
) -> None:
    """Measure the sampled programs on TARGET."""
    from . import stages

    stages.collect_target(target, task_limit)


@stage_app.command("records")
def stage_records(
    target: str = typer.Option(...),
    bundled_only: bool = typer.Option(False, help="a target measured elsewhere (a GPU): its bundled records alone"),
) -> None:
    """Merge the bundled dataset and fresh measurements of TARGET into its records table."""
    from . import stages

    stages.merge_records_target(target, bundled_only=bundled_only)


@stage_app.command("validate")
def stage_validate(target: str = typer.Option(...)) -> None:
    """Great Expectations checks on TARGET's records."""
    from . import stages

    stages.validate_target(target)


@stage_app.command("featurize")
def stage_featurize(target: str = typer.Option(...)) -> None:
    from . import stages

    stages.featurize_target(target)


@stage_app.command("msfeatures")
def stage_msfeatures(target: str = typer.Option(...)) -> None:
    """MetaSchedule's own per-store features of TARGET's records (for TVM's XGBoost peer)."""
    from . import stages

    stages.ms_features_target(target)


@stage_app.command("train")
def stage_train(target: str = typer.Option(...)) -> None:
    from . import stages

    stages.train_target(target)


@stage_app.command("train-attention")
def stage_train_attention(target: str = typer.Option(...)) -> None:
    """Train and register the cross-feature attention model of TARGET."""
    from . import stages

    stages.train_attention_target(target)


@stage_app.command("transfer")
def stage_transfer() -> None:
    """The transfer learning-curve study (source model pulled from the registry by alias)."""
    from . import stages

    stages.transfer()


@stage_app.command("evaluate")
def stage_evaluate() -> None:
    from . import stages

    stages.evaluate()


@stage_app.command("tune")
def stage_tune() -> None:
    from . import stages

    stages.tune()


@app.command("import-tenset")
def import_tenset_cmd(
    paths: list[str] = typer.Argument(..., help="record files or directories (TenSet measure_records/<platform>/ layout)"),
    out: str = typer.Option(..., "--out", help="canonical records Parquet file to write"),
    target: Optional[str] = typer.Option(None, help="target id for every record (default: from the platform directory or target string)"),
    workers: int = typer.Option(0, help="parallel parser processes (0 = all cores)"),
    reference_parser: bool = typer.Option(False, "--reference-parser", help="parse every line with the reference path (orjson), not the C scanner"),
) -> None:
    """Import auto_scheduler / TenSet measure records (v0.2-v0.6) into the canonical table.

    Malformed lines are reported as path:line: reason, skipped, and written to OUT.quarantine.jsonl.
    Exits 0 when something was imported. Never unpickles anything.
    """
    from .tenset import import_tenset

    try:
        report = import_tenset(paths, out, target=target, workers=workers or None, fast=not reference_parser)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    for ex in report.examples:
        typer.echo(ex, err=True)
    if report.skipped:
        typer.echo(f"skipped {report.skipped} malformed line(s) of {report.lines}; written to {out}.quarantine.jsonl", err=True)
    typer.echo(json.dumps({"files": report.files, "lines": report.lines, "imported": report.imported, "skipped": report.skipped, "comments": report.comments,
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

    try:
        result = dataset.stats(paths or dataset.default_paths())
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
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
def dataset_agreement(paths: list[str] = typer.Argument(..., help="records files, one or more per target")) -> None:
    """Rank agreement of the same programs across each pair of targets (how far apart they are)."""
    from . import dataset, records

    table = records.read_records(paths)
    targets = sorted(set(table.column("target").to_pylist()))
    import pyarrow.compute as pc

    per = {t: table.filter(pc.equal(table["target"], t)) for t in targets}
    typer.echo(json.dumps(dataset.cross_target_agreement(per), indent=1))


@dataset_app.command("remeasure")
def dataset_remeasure(
    records_file: str = typer.Option(..., "--records", help="records of one target to sample from"),
    programs_dir: str = typer.Option(..., "--programs", help="the task set (tasks.json) the records came from"),
    target: str = typer.Option(...),
    out: str = typer.Option(..., help="Parquet file for the second measurements"),
    fraction: float = typer.Option(0.05),
    seed: int = typer.Option(0),
    params: str = typer.Option("params.yaml", help="params file whose `measure` section is used"),
) -> None:
    """Measure a random fraction of a target's programs again and report the relative differences."""
    from pathlib import Path

    from . import collect, dataset, hardware, records
    from .params_io import load_params

    hw = hardware.get_target(target)
    tasks, _, _ = collect.load_task_set(Path(programs_dir))
    first = records.read_records(records_file)
    second = collect.remeasure(first, tasks, hw, fraction, seed, collect.MeasureConfig(**load_params(params)["measure"]))
    records.write_records(second, out)
    typer.echo(json.dumps({"target": target, **dataset.relative_differences(first, second)}, indent=1))


@dataset_app.command("pack")
def dataset_pack(
    work_dir: str = typer.Option(..., help="directory where `tensorcost stage sample/collect` ran"),
    dest: str = typer.Option("data/bundled"),
    targets: list[str] = typer.Option(..., "--target"),
) -> None:
    """Pack a collection run into the bundled dataset layout."""
    from pathlib import Path

    from . import dataset

    typer.echo(json.dumps(dataset.pack(Path(work_dir), Path(dest), targets), indent=1))


@app.command("study")
def study(
    models: str = typer.Option(..., help="comma-separated model keys, e.g. attention,attention_concat"),
    splits: str = typer.Option("within_task,by_network", help="comma-separated split strategies"),
    out: str = typer.Option(..., help="JSON file for {target: {split: {model: metrics}}}"),
) -> None:
    """Run the split study for chosen models on the current features (an ablation beside the
    pipeline's evaluate stage; reads params.yaml, writes only OUT)."""
    from pathlib import Path

    from . import stages
    from .evaluation import TargetData, run_study
    from .params_io import load_params

    p = load_params()
    model_keys = [m.strip() for m in models.split(",") if m.strip()]
    datasets, meta = {}, None
    for t in p["targets"]:
        df, meta = stages._load_features(t)
        ms = stages._load_ms_features(t, df["record_id"]) if "tvm_xgb" in model_keys else None
        datasets[t] = TargetData(t, df, ms)
    metrics, _, _ = run_study(datasets, [x.strip() for x in splits.split(",")], model_keys, p["split"], dict(p["train"]["lightgbm"]),
                              meta["feature_schema"], meta["feature_names"], progress=lambda m: typer.echo(m, err=True), attention_params=p.get("attention"))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(stages._json(metrics))
    for t, by_split in metrics.items():
        for sp, by_model in by_split.items():
            typer.echo(f"{t} {sp}: " + ", ".join(f"{m} pca={r['pca']:.3f} top5={r['top5']:.3f}" for m, r in by_model.items()))


@app.command("targets")
def targets(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the target ids valid on this host."""
    from .hardware import available_targets

    ts = available_targets()
    if as_json:
        typer.echo(json.dumps({k: v.to_dict() for k, v in ts.items()}, indent=1))
        return
    for tid, t in sorted(ts.items()):
        if t.kind == "gpu":
            typer.echo(f"{tid:20s} arch={t.tvm_options.get('arch', '?'):14s} SMs={t.physical_cores}  {t.cpu_model}")
        else:
            typer.echo(f"{tid:20s} mcpu={t.mcpu or '-':16s} vector={t.vector_bytes}B threads={t.threads}  {t.cpu_model}")


@app.command("promote")
def promote(
    target: str = typer.Option(..., help="target id"),
    version: Optional[str] = typer.Option(None, help="version to promote (default: the candidate)"),
    min_gain: float = typer.Option(0.0, help="required gain of PCA and top-5 over the champion (negative: tolerated drop)"),
    rollback: bool = typer.Option(False, "--rollback", help="restore the previous champion instead"),
) -> None:
    """Move the `champion` alias to a version if its gates pass; refusals say why (exit 1)."""
    from . import registry

    try:
        res = registry.rollback(target) if rollback else registry.promote(target, version, min_gain)
    except registry.RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if rollback:
        typer.echo(f"rolled back {registry.model_name(target)}: champion is version {res.version} again (was {res.previous})")
    elif res.promoted:
        typer.echo(f"promoted {registry.model_name(target)} version {res.version} to champion (previous: {res.previous or 'none'})")
    else:
        typer.echo(f"refused: {registry.model_name(target)} version {res.version}: {res.reason}", err=True)
        raise typer.Exit(1)


@registry_app.command("history")
def registry_history(target: str = typer.Option(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Every promotion, refusal and rollback of TARGET's champion, oldest first."""
    from . import registry

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
        return f"v{v['version']} {v.get('model_family', '')} pca={float(v.get('pca', 'nan')):.3f} top5={float(v.get('top5', 'nan')):.3f} ({v.get('split', '')})"

    for r in rows:
        table.add_row(r["target"], fmt(r["champion"]), fmt(r["candidate"]))
    Console().print(table)


@registry_app.command("show")
def registry_show(target: str = typer.Option(...), alias: str = typer.Option("champion")) -> None:
    """Show the version behind an alias (falls back to the candidate)."""
    from . import registry

    try:
        r = registry.resolve(target, alias)
    except registry.RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(r.message)
    typer.echo(json.dumps(r.tags, indent=1, sort_keys=True))


if __name__ == "__main__":
    app()
