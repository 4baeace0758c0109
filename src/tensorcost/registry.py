"""MLflow model registry: register, tag, alias, promote, load by alias. MLflow lives only here.

One registered model per hardware target, `tensorcost-<target>`. Aliases: `candidate` (set on
registration) and `champion` (set only by `promote`). Artifacts are our own model directories
(text/JSON/safetensors), downloaded and loaded by `models.load_model`: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT_PATH = "model"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def model_name(target: str) -> str:
    """`tensorcost-<target>`; the id is checked first (it becomes a registry name and a filter)."""
    from .hardware import split_target_id

    split_target_id(target)
    return f"tensorcost-{target}"


def _client():
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient(tracking_uri=tracking_uri())


class RegistryError(UserError, RuntimeError):
    """A registry request that cannot be served (no such version or alias, a refused rollback)."""


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
    alias: str | None = None,
    description: str | None = None,
) -> str:
    """Log a training run with the model directory as artifacts and register it as a new
    version of `tensorcost-<target>` carrying `tags` (and `alias`, if given). Returns the version."""
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
    mv = client.create_model_version(name, source=source, run_id=run_id, tags={k: str(v) for k, v in tags.items()}, description=description)
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def set_alias(target: str, alias: str, version: str) -> None:
    _client().set_registered_model_alias(model_name(target), alias, str(version))


def model_card_tags(
    *, target: str, family: str, objective: str, feature_schema: str, split: str, train_data_hash: str, eval_data_hash: str,
    validation_passed: bool, git_commit: str, metrics: dict, **extra,
) -> dict:
    """The tags every registered version carries (the promotion gates and model cards read them)."""
    return {
        "target": target,
        "model_family": family,
        "objective": objective,
        "feature_schema": feature_schema,
        "split": split,
        "train_data_hash": train_data_hash,
        "eval_data_hash": eval_data_hash,
        "git_commit": git_commit,
        "validation": "passed" if validation_passed else "failed",
        **{f"metric.{k}": v for k, v in metrics.items()},
        **extra,
    }


def get_version(target: str, alias: str) -> ResolvedVersion | None:
    name = model_name(target)
    client = _client()
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
    model_name(target)  # a valid id before any store is opened
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


HISTORY_EXPERIMENT = "tensorcost-registry-history"


@contextlib.contextmanager
def _promotion_lock(target: str):
    """Serialize promotions of one target across processes (compare-and-set on the alias).

    MLflow aliases have no compare-and-set, so gates are checked and the alias moved under an
    OS file lock. For a SQLite store the lock sits beside the database; for a remote tracking
    server it is per machine (promotions from several machines are not serialized).
    """
    import fcntl
    import hashlib

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        base = Path(uri[len("sqlite:///"):]).resolve()
        lock_path = base.with_name(f"{base.name}.{model_name(target)}.lock")
    else:
        lock_path = Path.home() / ".cache" / "tensorcost" / f"promote-{hashlib.sha1(uri.encode()).hexdigest()[:12]}-{target}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _record_event(target: str, action: str, result: PromotionResult) -> None:
    """Append one promotion/refusal/rollback to the history (a run in a dedicated experiment:
    MLflow aliases keep no history of their own)."""
    import getpass
    import socket

    client = _client()
    exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(HISTORY_EXPERIMENT)
    run = client.create_run(exp_id, run_name=f"{action}-{target}-v{result.version}", tags={
        "target": target, "action": action, "version": result.version, "previous": result.previous or "",
        "promoted": str(result.promoted).lower(), "reason": result.reason[:4000],
        "actor": f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}",
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
    })
    client.set_terminated(run.info.run_id)


def history(target: str) -> list[dict]:
    """Every promotion, refusal and rollback of `target`, oldest first."""
    model_name(target)  # a valid id before any store is opened
    client = _client()
    exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.target = '{target}'", order_by=["attributes.start_time ASC"], max_results=10000)
    keys = ("time", "action", "version", "previous", "promoted", "reason", "actor")
    events = [{k: r.data.tags.get(k, "") for k in keys} for r in runs]
    return sorted(events, key=lambda e: e["time"])


def _check_gates(target: str, version: str, min_gain: float, metric_keys: tuple[str, ...]) -> PromotionResult:
    client = _client()
    name = model_name(target)
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
            if not new >= old + min_gain:
                worse = "worse than" if new < old else "not enough above"
                return refuse(f"{key} {new:.4f} is {worse} champion {champ.version}'s {old:.4f} (min gain {min_gain:+g})")
    return PromotionResult(True, target, str(version), champ.version if champ else None, "all gates passed")


def promote(target: str, version: str | None = None, min_gain: float = 0.0, metric_keys: tuple[str, ...] = ("pca", "top1", "top5")) -> PromotionResult:
    """Move `champion` to `version` (default: the candidate) if its gates pass; every attempt,
    promoted or refused, is appended to the history.

    Gates: validation passed; same feature schema as the champion; evaluated on the same
    evaluation data as the champion; every metric in `metric_keys` not worse than the
    champion's plus `min_gain` (0: not worse; negative: a tolerated drop). Checked and applied under a per-target lock, so two
    racing promotions end with one consistent champion.
    """
    model_name(target)  # a valid id before any store is opened
    client = _client()
    with _promotion_lock(target):
        if version is None:
            cand = get_version(target, CANDIDATE)
            if cand is None:
                raise RegistryError(f"{model_name(target)} has no '{CANDIDATE}' version to promote")
            version = cand.version
        result = _check_gates(target, str(version), min_gain, metric_keys)
        if result.promoted:
            client.set_registered_model_alias(model_name(target), CHAMPION, str(version))
        _record_event(target, "promote" if result.promoted else "refuse", result)
    return result


def rollback(target: str) -> PromotionResult:
    """Restore the champion that the last promotion (or rollback) replaced."""
    model_name(target)  # a valid id before any store is opened
    client = _client()
    with _promotion_lock(target):
        champ = get_version(target, CHAMPION)
        if champ is None:
            raise RegistryError(f"{model_name(target)} has no champion to roll back")
        moves = [e for e in history(target) if e["promoted"] == "true" and e["action"] in ("promote", "rollback") and e["version"] == champ.version]
        if not moves or not moves[-1]["previous"]:
            raise RegistryError(f"{model_name(target)}: no previous champion recorded for version {champ.version}")
        previous = moves[-1]["previous"]
        client.set_registered_model_alias(model_name(target), CHAMPION, previous)
        result = PromotionResult(True, target, previous, champ.version, f"rolled back from version {champ.version}")
        _record_event(target, "rollback", result)
    return result


def list_models() -> list[dict]:
    """Per target: champion and candidate versions with their metrics."""
    client = _client()
    out = []
    for rm in client.search_registered_models(filter_string="name LIKE 'tensorcost-%'"):
        target = rm.name[len("tensorcost-"):]
        row = {"target": target, "name": rm.name}
        for alias in (CHAMPION, CANDIDATE):
            v = get_version(target, alias)
            row[alias] = None if v is None else {"version": v.version, **{k[len("metric."):]: v.tags[k] for k in v.tags if k.startswith("metric.")}, "split": v.tags.get("split", ""), "model_family": v.tags.get("model_family", "")}
        out.append(row)
    return sorted(out, key=lambda r: r["target"])
