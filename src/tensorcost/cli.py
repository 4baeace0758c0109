"""The `tensorcost` command line (Typer). Thin: every command calls into the rooms."""

from __future__ import annotations

import json
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Learned cost models of tensor programs.")
stage_app = typer.Typer(no_args_is_help=True, help="Pipeline stages (run by `dvc repro`; see dvc.yaml).")
registry_app = typer.Typer(no_args_is_help=True, help="The MLflow model registry.")
app.add_typer(stage_app, name="stage")
app.add_typer(registry_app, name="registry")


@stage_app.command("sample")
def stage_sample() -> None:
    """Extract tasks from the zoo and sample programs (once, for all targets)."""
    from . import stages

    stages.sample()


@stage_app.command("collect")
def stage_collect(target: str = typer.Option(..., help="target id, see `tensorcost targets`")) -> None:
    """Measure the sampled programs on TARGET."""
    from . import stages

    stages.collect_target(target)


@stage_app.command("validate")
def stage_validate(target: str = typer.Option(...)) -> None:
    """Great Expectations checks on TARGET's records."""
    from . import stages

    stages.validate_target(target)


@stage_app.command("featurize")
def stage_featurize(target: str = typer.Option(...)) -> None:
    from . import stages

    stages.featurize_target(target)


@stage_app.command("train")
def stage_train(target: str = typer.Option(...)) -> None:
    from . import stages

    stages.train_target(target)


@stage_app.command("evaluate")
def stage_evaluate() -> None:
    from . import stages

    stages.evaluate()


@stage_app.command("tune")
def stage_tune() -> None:
    from . import stages

    stages.tune()


@app.command("targets")
def targets(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the target ids valid on this host."""
    from .hardware import available_targets

    ts = available_targets()
    if as_json:
        typer.echo(json.dumps({k: v.to_dict() for k, v in ts.items()}, indent=1))
        return
    for tid, t in sorted(ts.items()):
        typer.echo(f"{tid:20s} mcpu={t.mcpu:16s} vector={t.vector_bytes}B threads={t.threads}  {t.cpu_model}")


@app.command("promote")
def promote(
    target: str = typer.Option(..., help="target id"),
    version: Optional[str] = typer.Option(None, help="version to promote (default: the candidate)"),
    tolerance: float = typer.Option(0.0, help="allowed drop of PCA/top-5 against the champion"),
) -> None:
    """Move the `champion` alias to a version if its gates pass; refusals say why."""
    from . import registry

    try:
        res = registry.promote(target, version, tolerance)
    except registry.RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if res.promoted:
        typer.echo(f"promoted {registry.model_name(target)} version {res.version} to champion (previous: {res.previous or 'none'})")
    else:
        typer.echo(f"refused: {registry.model_name(target)} version {res.version}: {res.reason}", err=True)
        raise typer.Exit(1)


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
