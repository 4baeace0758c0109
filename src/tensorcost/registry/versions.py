"""Versions: register (with the model card), aliases, tags, resolve an alias (champion, else candidate), download and load a version (verified before parsed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..models import load_model
from ..models.base import read_metadata, seal_unsealed
from ..pyfunc import write_pyfunc_files
from ..records.synthetic import is_synthetic_target
from ..safeio import sweep_stale
from .integrity import ARTIFACT_FILES_TAG, ARTIFACT_SHA256_TAG, artifact_sha256, file_digests, verify_artifacts
from .store import CANDIDATE, CHAMPION, MODEL_ARTIFACT_PATH, PREFIX, RegistryError, _absent, _artifact_root, _lookup_failed, _relocated, model_name, open_client, tracking_uri


@dataclass
class ResolvedVersion:
    name: str
    version: str
    alias: str
    tags: dict
    message: str


def _refuse_synthetic(*targets) -> None:
    """Synthetic data (`tensorcost dataset synth-tenset`) is for scale tests only: no model trained on it is registered or promoted."""
    for t in targets:
        if is_synthetic_target(t):
            raise RegistryError(f"refusing to register or promote a model trained on synthetic target {t!r}: synthetic records are for scale tests only")


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
    input_example=None,
) -> str:
    """Log a training run with the model directory as artifacts and register it as a new
    version of `tensorcost-<target>` carrying `tags` (and `alias`, if given), plus the content
    hash of the directory (`artifact_sha256`, `artifact_files`) that loading checks. With
    `input_example` (a feature frame, `pyfunc.example_frame`), the folder is first made an MLflow
    pyfunc model too (MLmodel, signature, input example: `tensorcost.pyfunc`). Returns the version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = model_name(target)
    _refuse_synthetic(target, tags.get("target"))
    model_dir = Path(model_dir)
    if input_example is not None:
        write_pyfunc_files(model_dir, input_example)
    digests = file_digests(model_dir)  # hashed before upload: what was trained is what loads
    if not digests:
        raise RegistryError(f"{model_dir}: no files to register as {name}")

    made_for = read_metadata(model_dir).target
    if made_for != target:  # a model registers under its own target's name only
        raise RegistryError(f"{model_dir} holds a model of {made_for!r}: it cannot be registered as {name}")
    client = open_client(create=True)
    if client.get_experiment_by_name(experiment) is None:
        try:
            client.create_experiment(experiment, artifact_location=_artifact_root(tracking_uri()))
        except MlflowException as exc:  # another process created it first
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    mlflow.set_experiment(experiment)
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
        client.create_registered_model(name, tags={"target": target})
    except MlflowException as exc:  # another process may have created it first: that is fine
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    files = json.dumps(digests, sort_keys=True)
    integrity = {ARTIFACT_SHA256_TAG: artifact_sha256(digests), **({ARTIFACT_FILES_TAG: files} if len(files) <= 50_000 else {})}
    mv = client.create_model_version(name, source=source, run_id=run_id, tags={**{k: str(v) for k, v in tags.items()}, **integrity}, description=description)
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def set_alias(target: str, alias: str, version: str) -> None:
    """Point `alias` at `version`; not `champion`, which moves only through `promote`/`rollback`
    (its gates and its history)."""
    if alias == CHAMPION:
        raise RegistryError(f"'{CHAMPION}' moves only through `tensorcost promote` (gates and history), not set_alias")
    open_client().set_registered_model_alias(model_name(target), alias, str(version))


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


def register_trained(model_dir: Path, target: str, *, key: str, family: str, objective: str, feature_schema: str, split: str,
                     metrics: dict, trained_on: str, test_records: int, experiment: str, run_name: str, params: dict, data_tags: dict,
                     git_commit: str, curves: dict | None = None, input_example=None) -> str:
    """Register a trained model as a version of tensorcost-<target> with its model card: the tags
    the gates read (`model_card_tags`, with `data_tags`: the data's hashes and verdict) and a
    description naming what it was trained on and its test figures. Returns the version."""
    tags = model_card_tags(target=target, family=family, objective=objective, feature_schema=feature_schema, split=split,
                           git_commit=git_commit, metrics=metrics, model_key=key, **data_tags)
    card = (f"{key} ({family}) for {target}, trained on {trained_on}; on the test side ({test_records} records, {metrics['n_tasks']} tasks): "
            f"PCA {metrics['pca']:.3f}, top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f}")
    return log_and_register(model_dir, target, experiment=experiment, run_name=run_name, params=params, metrics=metrics, tags=tags,
                            curves=curves, description=card, input_example=input_example)


def register_transferred(model_dir: Path, target: str, *, approach: str, k: str, reason: str, chosen_on: str, metrics: dict, family: str,
                         objective: str, feature_schema: str, source_ref: str, data_tags: dict, experiment: str, git_commit: str, alias: str,
                         input_example=None) -> str:
    """Register the model the transfer study chose for a machine (`approach` at k% of its
    records), aliased `alias`, with its model card: the gates' tags, the source model it came
    from and a description of why it was chosen (`reason`) on which test side (`chosen_on`), with
    the figures the choice was made on. Returns the version."""
    tags = model_card_tags(target=target, family=family, objective=objective, feature_schema=feature_schema, split=f"transfer:{k}%",
                           git_commit=git_commit, metrics=metrics, source_model=source_ref or "none", model_key=approach, **data_tags)
    card = (f"{approach} at k={k}% for {target}, chosen on {chosen_on}: {reason}. "
            f"PCA {metrics['pca']:.3f}, top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f} (the figures the choice was made on)")
    return log_and_register(model_dir, target, experiment=experiment, run_name=f"transfer-{approach.replace(':', '-')}-to-{target}",
                            params={"approach": approach, "source_model": source_ref or "none", "k_percent": k}, metrics=metrics, tags=tags,
                            alias=alias, description=card, input_example=input_example)


def get_version(target: str, alias: str) -> ResolvedVersion | None:
    """The version behind `alias`, None when the model or the alias does not exist. Any other
    failure (store unreachable, locked, broken) raises `RegistryError`: treating it as "no
    champion" would let a promotion skip the comparison with the real champion."""
    name = model_name(target)
    client = open_client()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except Exception as exc:  # noqa: BLE001  (classified: only "absent" means None)
        if _absent(exc):
            return None
        raise _lookup_failed(f"alias '{alias}' of {name}", exc) from exc
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
    name = model_name(target)
    client = open_client()
    try:
        aliases = sorted(client.get_registered_model(name).aliases or {})
    except Exception as exc:  # noqa: BLE001  (classified: an absent model gets its own answer)
        if not _absent(exc):
            raise _lookup_failed(f"registered model {name}", exc) from exc
        known = sorted(rm.name[len(PREFIX) + 1:] for rm in client.search_registered_models(filter_string=f"name LIKE '{PREFIX}-%'"))
        raise RegistryError(f"no registered model {name} in {tracking_uri()}; registered targets: {', '.join(known) or 'none'} "
                            f"(`tensorcost registry list`; `make run` trains and registers the train targets)") from None
    if alias == CHAMPION and aliases:
        fix = f"promote a version: `tensorcost promote --target {target}`"
    else:
        fix = "aliases it has: " + (", ".join(aliases) or "none") + " (`tensorcost registry list`)"
    raise RegistryError(f"no version of {name} has alias '{alias}'" + (f" or '{fallback}'" if fallback and fallback != alias else "")
                        + f" in {tracking_uri()}; {fix}")


def download(target: str, version: str, dest: Path, tags: dict | None = None) -> Path:
    """Download a version's model directory into `dest` (the caller owns and removes it) and
    verify it against the hash registered with it (`verify_artifacts`; `tags`: the version's
    tags if already read). Returns the model directory."""
    name = model_name(target)  # a valid id before any store is opened
    import mlflow

    mv = _model_version(open_client(), target, str(version))
    if tags is None:
        tags = dict(mv.tags)
    moved = _relocated(mv.source, tracking_uri())
    try:
        if moved is not None:  # the repository moved since registration: its own mlruns/ holds the files
            path = Path(dest) / MODEL_ARTIFACT_PATH
            shutil.copytree(moved, path)
        else:
            path = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dest)))
    except Exception as exc:  # noqa: BLE001  (a missing artifact directory or store error: one line)
        raise _lookup_failed(f"the artifacts of {name} version {version}", exc) from exc
    verify_artifacts(name, str(version), tags, path)
    if tags.get(ARTIFACT_SHA256_TAG):
        # the registered hash vouches for every byte: a version saved before model metadata
        # carried its own digest (models.base.metadata_digest) is sealed here, in the download

        seal_unsealed(path)
    return path


def load_by_alias(target: str, alias: str = CHAMPION, fallback: str | None = CANDIDATE, expected_feature_schema: str | None = None):
    """(model, resolved version) for `models:/tensorcost-<target>@<alias>`: downloaded into a
    temporary directory that is removed once the model is in memory, verified before parsing."""
    resolved = resolve(target, alias, fallback)
    with _model_tmpdir() as tmp:
        model = load_model(download(target, resolved.version, Path(tmp), resolved.tags), expected_feature_schema)
    _check_model_target(model, target, resolved.version)
    return model, resolved


MODEL_TMP_PREFIX = "tensorcost-model-"


def _model_tmpdir():
    """A temporary folder for a downloaded version, named with this pid: the folders of loads
    killed with -9 (their pid gone) are removed by the next load."""
    sweep_stale(tempfile.gettempdir(), MODEL_TMP_PREFIX)
    return tempfile.TemporaryDirectory(prefix=f"{MODEL_TMP_PREFIX}{os.getpid()}-")


def _check_model_target(model, target: str, version: str) -> None:
    """A version's model must be one of the registered model's target (another target's model,
    re-uploaded under this name, is refused)."""
    if model.metadata.target != target:
        raise RegistryError(f"{model_name(target)} version {version} holds a model of {model.metadata.target!r}, not of {target!r}: refusing it")


def load_version(target: str, version: str, expected_feature_schema: str | None = None):
    """(model, its tags) of one version, verified against its registered hash before parsing."""
    tags = version_tags(target, str(version))
    with _model_tmpdir() as tmp:
        model = load_model(download(target, str(version), Path(tmp), tags), expected_feature_schema)
    _check_model_target(model, target, str(version))
    return model, tags


MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


def target_of(name: str) -> str:
    """The target id of a registered model name (`tensorcost-<target>`)."""
    if not name.startswith(f"{PREFIX}-"):
        raise RegistryError(f"{name!r} is not a tensorcost model name: expected {PREFIX}-<target id>, e.g. {PREFIX}-zen4-2c.avx2-t1")
    target = name[len(PREFIX) + 1:]
    model_name(target)  # validates the id
    return target


def load_uri(uri: str, expected_feature_schema: str | None = None):
    """(model, target id, what was loaded) for `models:/tensorcost-<target>@<alias>` or
    `models:/tensorcost-<target>/<version>`; no fallback: the URI names exactly one version."""
    m = MODEL_URI.match(uri)
    if not m:
        raise RegistryError(f"{uri!r} is not a registry model URI: expected models:/{PREFIX}-<target>@<alias> or models:/{PREFIX}-<target>/<version>")
    target = target_of(m["name"])
    if m["alias"]:
        model, resolved = load_by_alias(target, m["alias"], fallback=None, expected_feature_schema=expected_feature_schema)
        return model, target, {"name": resolved.name, "version": resolved.version, "alias": m["alias"]}
    model, _ = load_version(target, m["version"], expected_feature_schema)
    return model, target, {"name": m["name"], "version": m["version"], "alias": None}


def set_tags(target: str, version: str, tags: dict) -> None:
    client = open_client()
    for k, v in tags.items():
        client.set_model_version_tag(model_name(target), version, k, str(v))


def version_tags(target: str, version: str) -> dict:
    return dict(_model_version(open_client(), target, version).tags)


def _model_version(client, target: str, version: str):
    """`client.get_model_version`, a missing version and a failed lookup each in one line."""
    name = model_name(target)
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:  # noqa: BLE001  (classified below)
        if _absent(exc):
            raise RegistryError(f"{name} has no version {version}") from None
        raise _lookup_failed(f"version {version} of {name}", exc) from exc


def canonical_version(version) -> str:
    """A version argument as the registry writes versions ('3'), refused otherwise: ' 1', '01',
    '1.0' and '-1' would be promoted and recorded as another string than the version's."""
    text = str(version)
    if re.fullmatch(r"v[1-9][0-9]{0,9}", text):  # as `tensorcost registry list` prints versions
        text = text[1:]
    if not re.fullmatch(r"[1-9][0-9]{0,9}", text):
        raise RegistryError(f"version {text!r}: a version is a positive integer such as 3 (or v3, as `tensorcost registry list` prints it), "
                            f"written without spaces or leading zeros")
    return text


def list_models() -> list[dict]:
    """Per target: champion and candidate versions with their metrics."""
    client = open_client()
    out = []
    for rm in client.search_registered_models(filter_string="name LIKE 'tensorcost-%'"):
        target = rm.name[len("tensorcost-"):]
        row = {"target": target, "name": rm.name}
        for alias in (CHAMPION, CANDIDATE):
            v = get_version(target, alias)
            row[alias] = None if v is None else {"version": v.version, **{k[len("metric."):]: v.tags[k] for k in v.tags if k.startswith("metric.")}, "split": v.tags.get("split", ""), "model_family": v.tags.get("model_family", "")}
        out.append(row)
    return sorted(out, key=lambda r: r["target"])
