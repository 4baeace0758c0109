"""MLflow model registry: register, tag, alias, promote, load by alias. MLflow lives only here.

One registered model per hardware target, `tensorcost-<target>`. Aliases: `candidate` (set on
registration) and `champion` (set only by `promote`). Artifacts are our own model directories
(text/JSON/safetensors), downloaded and loaded by `models.load_model`: nothing is unpickled.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT_PATH = "model"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def model_name(target: str) -> str:
    return f"tensorcost-{target}"


def _client():
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient(tracking_uri=tracking_uri())


class RegistryError(RuntimeError):
    pass


@dataclass
class ResolvedVersion:
    name: str
    version: str
    alias: str
    tags: dict
    message: str


def log_and_register(
    model_dir: Path,
    target: str,
    *,
    experiment: str,
    run_name: str,
    params: dict,
    metrics: dict,
    tags: dict,
    curves: dict[str, list[float]] | None = None,
) -> str:
    """Log a training run with the model directory as artifacts and register it as a new
    version of `tensorcost-<target>` carrying `tags`, aliased `candidate`. Returns the version."""
    import mlflow

    client = _client()
    mlflow.set_experiment(experiment)
    name = model_name(target)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        for key, values in (curves or {}).items():
            for step, v in enumerate(values):
                mlflow.log_metric(key, float(v), step=step)
        mlflow.set_tags({k: str(v) for k, v in tags.items()})
        mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT_PATH)
        source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
        run_id = run.info.run_id
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001  (mlflow raises RestException when absent)
        client.create_registered_model(name, tags={"target": target})
    mv = client.create_model_version(name, source=source, run_id=run_id, tags={k: str(v) for k, v in tags.items()})
    client.set_registered_model_alias(name, CANDIDATE, mv.version)
    return str(mv.version)


def get_version(target: str, alias: str) -> ResolvedVersion | None:
    client = _client()
    name = model_name(target)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except Exception:  # noqa: BLE001
        return None
    return ResolvedVersion(name, str(mv.version), alias, dict(mv.tags), "")


def resolve(target: str, alias: str = CHAMPION, fallback: str | None = CANDIDATE) -> ResolvedVersion:
    """The version behind `alias`; falls back to `fallback` with a clear message."""
    found = get_version(target, alias)
    if found:
        found.message = f"using {found.name}@{alias} (version {found.version})"
        return found
    if fallback and fallback != alias:
        fb = get_version(target, fallback)
        if fb:
            fb.message = (
                f"no '{alias}' alias on {model_name(target)} yet; falling back to '{fallback}' "
                f"(version {fb.version}). Promote one with `tensorcost promote --target {target}`."
            )
            return fb
    raise RegistryError(
        f"no version of {model_name(target)} has alias '{alias}'"
        + (f" or '{fallback}'" if fallback and fallback != alias else "")
        + f" in {tracking_uri()}; run the pipeline (dvc repro) to train and register one"
    )


def download(target: str, version: str, dest: Path | None = None) -> Path:
    """Download a version's model directory (to a fresh temp dir by default)."""
    import mlflow

    _client()
    dest = Path(dest or tempfile.mkdtemp(prefix="tensorcost-model-"))
    path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name(target)}/{version}", dst_path=str(dest))
    return Path(path)


def load_by_alias(target: str, alias: str = CHAMPION, fallback: str | None = CANDIDATE, expected_feature_schema: str | None = None):
    """(model, resolved version) for `models:/tensorcost-<target>@<alias>`."""
    from .models import load_model

    resolved = resolve(target, alias, fallback)
    model = load_model(download(target, resolved.version), expected_feature_schema)
    return model, resolved


def set_tags(target: str, version: str, tags: dict) -> None:
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(model_name(target), version, k, str(v))


def version_tags(target: str, version: str) -> dict:
    client = _client()
    return dict(client.get_model_version(model_name(target), version).tags)


@dataclass
class PromotionResult:
    promoted: bool
    target: str
    version: str
    previous: str | None
    reason: str


def promote(target: str, version: str | None = None, tolerance: float = 0.0, metric_keys: tuple[str, ...] = ("pca", "top5")) -> PromotionResult:
    """Move `champion` to `version` (default: the candidate) if its gates pass.

    Gates: validation passed; same feature schema as the champion; evaluated on the same
    evaluation data as the champion; every metric in `metric_keys` not worse than the
    champion's by more than `tolerance`.
    """
    client = _client()
    name = model_name(target)
    if version is None:
        cand = get_version(target, CANDIDATE)
        if cand is None:
            raise RegistryError(f"{name} has no '{CANDIDATE}' version to promote")
        version = cand.version
    try:
        mv = client.get_model_version(name, str(version))
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(f"{name} has no version {version}: {exc}") from None
    tags = dict(mv.tags)
    champ = get_version(target, CHAMPION)

    def refuse(why: str) -> PromotionResult:
        return PromotionResult(False, target, str(version), champ.version if champ else None, why)

    if tags.get("validation") != "passed":
        return refuse(f"version {version}: data validation is {tags.get('validation', 'unknown')!r}, not 'passed'")
    if champ is not None:
        if champ.version == str(version):
            return refuse(f"version {version} is already the champion")
        if champ.tags.get("feature_schema") != tags.get("feature_schema"):
            return refuse(f"feature schema {tags.get('feature_schema')!r} differs from the champion's {champ.tags.get('feature_schema')!r}")
        if champ.tags.get("eval_data_hash") != tags.get("eval_data_hash"):
            return refuse(
                f"version {version} was evaluated on data {tags.get('eval_data_hash')} but champion {champ.version} on "
                f"{champ.tags.get('eval_data_hash')}: metrics are not comparable; re-run the pipeline so both are evaluated on the same data"
            )
        for key in metric_keys:
            new, old = float(tags.get(f"metric.{key}", "nan")), float(champ.tags.get(f"metric.{key}", "nan"))
            if not new >= old - tolerance:
                return refuse(f"{key} {new:.4f} is worse than champion {champ.version}'s {old:.4f} (tolerance {tolerance})")
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return PromotionResult(True, target, str(version), champ.version if champ else None, "all gates passed")
