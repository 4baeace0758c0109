"""MLflow model registry: register, tag, alias, promote, load by alias. MLflow lives only here.

One registered model per hardware target, `tensorcost-<target>`. Aliases: `candidate` (set on
registration) and `champion` (set only by `promote`). Artifacts are our own model directories
(text/JSON/safetensors), downloaded and loaded by `models.load_model`: nothing is unpickled.

Fail closed: a registry lookup that fails for any reason other than "no such model/alias" stops
the caller (a promotion never passes its gates because the champion could not be read), and a
downloaded version is checked against the content hash recorded at registration before any
family code parses its files.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .digest import file_sha256
from .errors import UserError

log = logging.getLogger(__name__)

REGISTRY_DB = "mlflow.db"  # the embedded registry: this file at the repository's root
CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT_PATH = "model"
ARTIFACT_SHA256_TAG = "artifact_sha256"  # sha256 over the model directory's files (names included)
ARTIFACT_FILES_TAG = "artifact_files"  # JSON {relative path: sha256}: names the file that differs


PREFIX = "tensorcost"  # registered model names: tensorcost-<target id>


# mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI: the repository's registry we set is
# remembered, so that the environment variable still says only what the user set.
_OWN_URI: list[str | None] = [None]


def project_root(start: Path | None = None) -> Path | None:
    """The tensorcost repository holding `start` (default: the working directory): the nearest
    folder at or above it with both dvc.yaml and params.yaml; None outside any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file():
            return folder
    return None


def _user_uri() -> str | None:
    """MLFLOW_TRACKING_URI when the user set it (not when mlflow exported ours)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri and uri != _OWN_URI[0] else None


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the repository's own registry (`<repository>/mlflow.db`, found
    from the working directory upwards: the same registry from any of its folders)."""
    uri = _user_uri()
    if uri:
        return uri
    root = project_root()
    if root is None:
        raise RegistryError(f"no tensorcost repository in {Path.cwd()} or above it (no dvc.yaml with params.yaml): run this inside "
                            f"the repository, or set MLFLOW_TRACKING_URI (e.g. sqlite:////path/to/tensorcost/{REGISTRY_DB})")
    return f"sqlite:///{root / REGISTRY_DB}"


def location() -> dict:
    """Which registry the stages register into, as the `registry` stage records it: the
    repository's own (`repository:mlflow.db`, the same wherever the repository is), another
    SQLite file, or a server (its URI without credentials). A stage that registers depends on
    it, so pointing the pipeline at another registry (make run-team) registers there again."""
    from urllib.parse import urlsplit, urlunsplit

    uri = tracking_uri()
    root, db = project_root(), _sqlite_path(uri)
    if db is not None and root is not None and db == (root / REGISTRY_DB).resolve():
        return {"registry": f"repository:{REGISTRY_DB}"}
    if db is not None:
        return {"registry": f"sqlite:{db}"}
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return {"registry": urlunsplit((parts.scheme, netloc, parts.path, "", ""))}


def model_name(target: str) -> str:
    """`tensorcost-<target>`; the id is checked first (it becomes a registry name and a filter)."""
    from .hardware import split_target_id

    split_target_id(target)
    return f"{PREFIX}-{target}"


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI (relative to the working directory, as
    MLflow resolves it); None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0]).resolve()


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive OS lock on `lock_path`, across processes of this machine (filelock)."""
    from filelock import FileLock

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path):
        yield


_STORES_READY: set[str] = set()  # stores this process has created/migrated (MLflow caches them per URI)


def _client(create: bool = False):
    """An MlflowClient whose tracking and registry stores exist. Reading never creates a store:
    a missing SQLite registry is a one-line error unless `create` (registering a model). MLflow
    creates and migrates a SQLite schema on a process's first touch, and several processes doing
    so at once on a new database fail or corrupt it (`table _alembic_tmp_latest_metrics already
    exists`): creation is serialized by a lock file beside the database, which later first
    touches also take when it exists (none is made to read)."""
    import mlflow
    from mlflow import MlflowClient

    user_set = _user_uri() is not None
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if not user_set:
        _OWN_URI[0] = uri
    db = _sqlite_path(uri)
    if db is None or str(db) in _STORES_READY:
        return MlflowClient(tracking_uri=uri)
    lock = db.with_name(f"{db.name}.init.lock")
    if not db.exists() and not create:
        raise RegistryError(f"no model registry at {db} yet: `make run` trains and registers the models "
                            f"(or set MLFLOW_TRACKING_URI to an existing registry)")
    with _file_lock(lock) if create or lock.exists() else contextlib.nullcontext():
        # The constructor builds the tracking store (creating/migrating the schema), the first
        # registry call the registry store; MLflow caches both per process, so neither this
        # client nor the fluent API (mlflow.start_run...) migrates again outside the lock.
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_registered_models(max_results=1)
        except Exception as exc:  # noqa: BLE001  (a store that cannot be opened: one line, no traceback)
            raise _lookup_failed("the model registry", exc) from exc
    _STORES_READY.add(str(db))
    return client


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment of an embedded registry keeps its artifacts: `mlruns/` beside the
    database (not the working directory), so every folder of the repository writes to one place
    and `_relocated` can find them after the repository moves."""
    db = _sqlite_path(uri)
    return None if db is None else (db.parent / "mlruns").as_uri()


def _relocated(source: str, uri: str) -> Path | None:
    """A version's local artifact folder after its repository moved: the stored source is an
    absolute path (`.../mlruns/<experiment>/<run>/artifacts/model`) under the old location; the
    same path under the registry database's own `mlruns/`, if it exists there."""
    from urllib.parse import unquote, urlparse

    db = _sqlite_path(uri)
    if db is None:
        return None
    parsed = urlparse(source)
    if parsed.scheme not in ("", "file"):
        return None
    old = Path(unquote(parsed.path))
    if old.exists() or "mlruns" not in old.parts:
        return None
    tail = old.parts[len(old.parts) - old.parts[::-1].index("mlruns"):]
    moved = db.parent.joinpath("mlruns", *tail)
    return moved if moved.is_dir() else None


class RegistryError(UserError, RuntimeError):
    """A registry request that cannot be served (no such version or alias, a refused rollback)."""


class ArtifactIntegrityError(RegistryError):
    """A downloaded model version whose files are not the ones registered."""


def _absent(exc: BaseException) -> bool:
    """Whether an MLflow error means "no such registered model / version / alias" (and nothing
    else: an unreachable or broken store is not an absent alias). REST stores and a missing model
    in the SQL store say RESOURCE_DOES_NOT_EXIST; the SQL store of MLflow 3.17 reports a missing
    alias as INVALID_PARAMETER_VALUE "Registered model alias <a> not found."."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    msg = str(exc.message if hasattr(exc, "message") else exc).lower()
    return exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in msg and "not found" in msg


def _lookup_failed(what: str, exc: BaseException) -> RegistryError:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return RegistryError(f"cannot read {what} from {tracking_uri()} ({type(exc).__name__}: {first}); refusing to go on without it")


# MLflow writes this into a version's folder when `mlflow.pyfunc.load_model("models:/...")` loads it
# (on a local artifact store, into the store itself); the project never reads it
MLFLOW_WRITTEN = frozenset({"registered_model_meta"})


def _file_digests(directory: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every file under `directory` (but MLFLOW_WRITTEN), sorted by name."""
    out: dict[str, str] = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.relative_to(directory).as_posix() not in MLFLOW_WRITTEN:
            out[p.relative_to(directory).as_posix()] = file_sha256(p)
    return dict(sorted(out.items()))


def artifact_sha256(digests: dict[str, str]) -> str:
    """One hash over a model directory: names and contents, in a stable (sorted) order, so a
    renamed, added, removed or changed file all change it."""
    h = hashlib.sha256()
    for name, digest in sorted(digests.items()):
        h.update(name.encode() + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()


def verify_artifacts(name: str, version: str, tags: dict, directory: Path) -> None:
    """Refuse `directory` (a downloaded version) unless its files hash to the registered
    `artifact_sha256`, naming the model, version and first differing file; called before any
    family code parses the files.

    Versions registered before the hash existed (no tag) load with a warning rather than being
    refused: refusing would strand every champion of an existing store. Re-register them (re-run
    the pipeline) to have them checked.
    """
    expected = tags.get(ARTIFACT_SHA256_TAG)
    if not expected:
        log.warning("%s version %s has no %s tag (registered before artifacts were hashed): loading it unverified", name, version, ARTIFACT_SHA256_TAG)
        return
    actual = _file_digests(directory)
    if artifact_sha256(actual) == expected:
        return
    try:
        registered = json.loads(tags.get(ARTIFACT_FILES_TAG) or "{}")
    except ValueError:
        registered = {}
    missing = sorted(set(registered) - set(actual))
    changed = sorted(k for k in registered if k in actual and actual[k] != registered[k])
    extra = sorted(set(actual) - set(registered)) if registered else []
    what = (f"file {missing[0]} is missing" if missing else f"file {changed[0]} differs from the registered one" if changed
            else f"unexpected file {extra[0]}" if extra else "its files differ from the registered ones")
    raise ArtifactIntegrityError(
        f"{name} version {version}: {what} (sha256 mismatch with tag {ARTIFACT_SHA256_TAG}); refusing to load it: "
        f"restore the artifacts or register the model again"
    )


def _filter_value(value: str) -> str:
    """`value` quoted for an MLflow search filter. Targets are validated ids, but the filter must
    not depend on that: a quote or backslash would end or escape the string literal."""
    if "'" in value or "\\" in value:
        raise RegistryError(f"{value!r} cannot be used in a registry search (quote or backslash)")
    return f"'{value}'"


@dataclass
class ResolvedVersion:
    name: str
    version: str
    alias: str
    tags: dict
    message: str


def _refuse_synthetic(*targets) -> None:
    """Synthetic data (`tensorcost dataset synth-tenset`) is for scale tests only: no model trained on it is registered or promoted."""
    from .records.synthetic import is_synthetic_target

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
        from .pyfunc import write_pyfunc_files

        write_pyfunc_files(model_dir, input_example)
    digests = _file_digests(model_dir)  # hashed before upload: what was trained is what loads
    if not digests:
        raise RegistryError(f"{model_dir}: no files to register as {name}")
    from .models.base import read_metadata

    made_for = read_metadata(model_dir).target
    if made_for != target:  # a model registers under its own target's name only
        raise RegistryError(f"{model_dir} holds a model of {made_for!r}: it cannot be registered as {name}")
    client = _client(create=True)
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
    """The version behind `alias`, None when the model or the alias does not exist. Any other
    failure (store unreachable, locked, broken) raises `RegistryError`: treating it as "no
    champion" would let a promotion skip the comparison with the real champion."""
    name = model_name(target)
    client = _client()
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
    client = _client()
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

    mv = _model_version(_client(), target, str(version))
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
        from .models.base import seal_unsealed

        seal_unsealed(path)
    return path


def load_by_alias(target: str, alias: str = CHAMPION, fallback: str | None = CANDIDATE, expected_feature_schema: str | None = None):
    """(model, resolved version) for `models:/tensorcost-<target>@<alias>`: downloaded into a
    temporary directory that is removed once the model is in memory, verified before parsing."""
    from .models import load_model

    resolved = resolve(target, alias, fallback)
    with _model_tmpdir() as tmp:
        model = load_model(download(target, resolved.version, Path(tmp), resolved.tags), expected_feature_schema)
    _check_model_target(model, target, resolved.version)
    return model, resolved


MODEL_TMP_PREFIX = "tensorcost-model-"


def _model_tmpdir():
    """A temporary folder for a downloaded version, named with this pid: the folders of loads
    killed with -9 (their pid gone) are removed by the next load."""
    from .safeio import sweep_stale

    sweep_stale(tempfile.gettempdir(), MODEL_TMP_PREFIX)
    return tempfile.TemporaryDirectory(prefix=f"{MODEL_TMP_PREFIX}{os.getpid()}-")


def _check_model_target(model, target: str, version: str) -> None:
    """A version's model must be one of the registered model's target (another target's model,
    re-uploaded under this name, is refused)."""
    if model.metadata.target != target:
        raise RegistryError(f"{model_name(target)} version {version} holds a model of {model.metadata.target!r}, not of {target!r}: refusing it")


def load_version(target: str, version: str, expected_feature_schema: str | None = None):
    """(model, its tags) of one version, verified against its registered hash before parsing."""
    from .models import load_model

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
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(model_name(target), version, k, str(v))


def version_tags(target: str, version: str) -> dict:
    return dict(_model_version(_client(), target, version).tags)


def _model_version(client, target: str, version: str):
    """`client.get_model_version`, a missing version and a failed lookup each in one line."""
    name = model_name(target)
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:  # noqa: BLE001  (classified below)
        if _absent(exc):
            raise RegistryError(f"{name} has no version {version}") from None
        raise _lookup_failed(f"version {version} of {name}", exc) from exc


@dataclass
class PromotionResult:
    promoted: bool
    target: str
    version: str
    previous: str | None
    reason: str


HISTORY_EXPERIMENT = "tensorcost-registry-history"


class _NoFence:
    """What `_promotion_lock` yields for a file lock: an OS lock cannot be lost while held."""

    def check(self) -> None:
        return None


@contextlib.contextmanager
def _promotion_lock(target: str) -> Iterator["_NoFence | _RegistryLock"]:
    """Serialize promotions of one target (compare-and-set on the alias).

    MLflow aliases have no compare-and-set, so gates are checked and the alias moved under a
    lock. A SQLite store is one machine's file: an OS file lock beside the database. Any other
    store (a tracking server, shared by machines with no common file system) gets a lock held in
    the registry itself (`_RegistryLock`). The yielded object's `check()` raises if the lock was
    lost (a lease that expired mid-promotion): call it right before moving the alias.
    """
    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None:
        with _file_lock(db.with_name(f"{db.name}.{model_name(target)}.lock")):
            yield _NoFence()
        return
    lock = _RegistryLock(_client(), target)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


LOCK_PREFIX = "tensorcost.promotion-lock"  # not `tensorcost-...`: list_models must not see locks as targets
LOCK_LEASE_ENV, LOCK_TIMEOUT_ENV = "TENSORCOST_PROMOTION_LEASE_S", "TENSORCOST_PROMOTION_LOCK_TIMEOUT_S"


def lock_model_name(target: str, generation: int) -> str:
    return f"{LOCK_PREFIX}.{target}.{generation}"


class _RegistryLock:
    """A lease lock made of registered models, so every machine talking to one server is excluded.

    Each acquisition creates the next *generation*, the registered model
    `tensorcost.promotion-lock.<target>.<n>`, tagged with its holder, a random token and the
    lease's expiry; MLflow's unique model name makes that creation atomic (one creator wins,
    the others get RESOURCE_ALREADY_EXISTS). Generation n may be created only when n-1 is free:
    tagged `released` by its holder, or its lease expired (holder gone). The holder is whoever
    created the highest generation.

    Why generations rather than one lock model that waiters delete when stale: MLflow has no
    compare-and-delete, so two waiters that both saw the stale lock could each delete it, the
    second deleting the fresh lock the first had just taken. Here nobody deletes or edits a lock
    another process may hold: breaking a stale lock *is* creating the next generation, which only
    one waiter can do. A creator that raced a slow reader (it recreated a generation already
    superseded and cleaned up) sees a higher generation on its check and backs off.

    Leases compare wall clocks of different machines: keep them NTP-synced (the lease, 120 s by
    default, dwarfs normal skew). A holder stalled past its lease loses the lock: `check()`
    before moving the alias says so instead of writing.
    """

    def __init__(self, client, target: str, lease_s: float | None = None, timeout_s: float | None = None):
        import getpass
        import socket
        import uuid

        self.client, self.target = client, target
        self.lease_s = float(lease_s if lease_s is not None else os.environ.get(LOCK_LEASE_ENV, 120))
        self.timeout_s = float(timeout_s if timeout_s is not None else os.environ.get(LOCK_TIMEOUT_ENV, 600))
        self.token = uuid.uuid4().hex
        self.holder = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        self.generation: int | None = None

    def _generations(self) -> dict[int, dict]:
        """{generation: tags} of this target's lock models (a few: superseded ones are deleted)."""
        prefix = f"{LOCK_PREFIX}.{self.target}."
        out, token = {}, None
        while True:
            page = self.client.search_registered_models(filter_string=f"name LIKE {_filter_value(prefix + '%')}", max_results=1000, page_token=token)
            for rm in page:
                rest = rm.name[len(prefix):]
                if rm.name.startswith(prefix) and rest.isdigit():  # `_` in a target id is a LIKE wildcard: match exactly here
                    out[int(rest)] = dict(rm.tags)
            token = page.token
            if not token:
                return out

    @staticmethod
    def _free(tags: dict) -> bool:
        import time

        try:
            expired = time.time() > float(tags.get("expires", "0"))
        except ValueError:
            expired = True  # an unreadable lease cannot hold anyone off forever
        return tags.get("released") == "true" or expired

    def _try_create(self, generation: int) -> bool:
        """Create `generation`; True if we did. Only RESOURCE_ALREADY_EXISTS is a clean "lost"; any
        other error (a create that raced a release, a retried request) is decided by reading who
        holds that generation now."""
        import time

        from mlflow.exceptions import MlflowException

        tags = {"holder": self.holder, "token": self.token, "lease_s": f"{self.lease_s:g}", "expires": f"{time.time() + self.lease_s:.3f}"}
        try:
            self.client.create_registered_model(lock_model_name(self.target, generation), tags=tags)
            return True
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                return False
            return self._generations().get(generation, {}).get("token") == self.token

    def acquire(self) -> None:
        import random
        import time

        deadline, attempt, tags = time.monotonic() + self.timeout_s, 0, {}
        try:
            while True:
                gens = self._generations()
                top = max(gens, default=0)
                tags = gens.get(top, {})
                if (top == 0 or self._free(tags)) and self._try_create(top + 1):
                    if max(self._generations(), default=0) == top + 1:
                        self.generation = top + 1
                        self._delete_superseded(gens)
                        return
                    self._release_generation(top + 1)  # a stale read let us recreate a superseded generation: back off
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"{model_name(self.target)}: could not take the promotion lock within {self.timeout_s:.0f} s: held by "
                        f"{tags.get('holder', '?')} until {_epoch_iso(tags.get('expires'))} (its lease frees it if that holder is gone)")
                attempt += 1
                time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))  # backoff + jitter: racers spread out
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001  (server unreachable or broken: fail closed, one line)
            raise _lookup_failed(f"the promotion lock of {model_name(self.target)}", exc) from exc

    def _delete_superseded(self, gens: dict[int, dict]) -> None:
        """Delete generations below ours (best effort: litter only, they can never be free again
        for a holder, since a higher generation exists)."""
        from mlflow.exceptions import MlflowException

        for g in gens:
            if g < (self.generation or 0):
                try:
                    self.client.delete_registered_model(lock_model_name(self.target, g))
                except MlflowException:
                    pass

    def check(self) -> None:
        """Raise unless we still hold the lock (ours is the highest generation, lease not over)."""
        import time

        gens = self._generations()
        top = max(gens, default=0)
        ours = gens.get(self.generation or -1, {})
        if top != self.generation or ours.get("token") != self.token or time.time() > float(ours.get("expires", "0")):
            raise RegistryError(f"{model_name(self.target)}: lost the promotion lock (lease of {self.lease_s:g} s expired); "
                                f"nothing was moved, promote again")

    def _release_generation(self, generation: int) -> None:
        self.client.set_registered_model_tag(lock_model_name(self.target, generation), "released", "true")

    def release(self) -> None:
        """Tag our generation released (if it is still ours); a failure leaves it to its lease."""
        if self.generation is None:
            return
        try:
            if self._generations().get(self.generation, {}).get("token") == self.token:
                self._release_generation(self.generation)
        except Exception as exc:  # noqa: BLE001  (the lease frees it; the promotion itself is done)
            log.warning("could not release the promotion lock of %s (its %g s lease frees it): %s", model_name(self.target), self.lease_s, exc)
        self.generation = None


def _epoch_iso(value: str | None) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(value or ""), datetime.timezone.utc).isoformat(timespec="seconds")
    except ValueError:
        return "?"


def _record_event(target: str, action: str, result: PromotionResult) -> None:
    """Append one promotion/refusal/rollback to the history (a run in a dedicated experiment:
    MLflow aliases keep no history of their own). Called under the promotion lock, so `seq`
    (one more than the events so far) orders events even within one clock tick."""
    import getpass
    import socket

    seq = len(history(target)) + 1
    client = _client()
    exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(HISTORY_EXPERIMENT)
    run = client.create_run(exp_id, run_name=f"{action}-{target}-v{result.version}", tags={
        "target": target, "action": action, "version": result.version, "previous": result.previous or "",
        "promoted": str(result.promoted).lower(), "reason": result.reason[:4000], "seq": str(seq),
        "actor": f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}",
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
    })
    try:
        client.set_terminated(run.info.run_id)
    except Exception as exc:  # noqa: BLE001  (the event's tags are written with the run: it is recorded; only its status lags)
        log.warning("history event %s of %s recorded, but its run %s could not be closed: %s", action, target, run.info.run_id, exc)


def history(target: str) -> list[dict]:
    """Every promotion, refusal and rollback of `target`, oldest first (by `seq`; events written
    before it existed have none and sort first, by time)."""
    name = model_name(target)  # a valid id before any store is opened
    query = f"tags.target = {_filter_value(target)}"
    client = _client()
    runs, token = [], None
    try:
        exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
        while exp is not None:  # every page: a long history must not lose its newest events
            page = client.search_runs([exp.experiment_id], filter_string=query, order_by=["attributes.start_time ASC"], max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
    except Exception as exc:  # noqa: BLE001  (rollbacks replay this: a partial history must not pass for the whole)
        raise _lookup_failed(f"the promotion history of {name}", exc) from exc
    keys = ("time", "action", "version", "previous", "promoted", "reason", "actor", "seq")
    events = [{k: r.data.tags.get(k, "") for k in keys} for r in runs]
    return sorted(events, key=lambda e: (int(e["seq"]) if e["seq"].isdigit() else 0, e["time"]))


def _champion_chain(events: list[dict]) -> list[str]:
    """The champions so far, oldest first, replayed from the history: a promotion pushes its
    version, a rollback pops back to the one before. So repeated rollbacks walk further back
    instead of swapping between the last two."""
    chain: list[str] = []
    for e in events:
        if e["promoted"] != "true":
            continue
        if e["action"] == "promote":
            chain.append(e["version"])
        elif e["action"] == "rollback":
            if chain and chain[-1] == e["previous"]:
                chain.pop()
            if not chain or chain[-1] != e["version"]:  # a history that does not replay cleanly (old swap-style rollbacks)
                chain.append(e["version"])
    return chain


def _move_champion(client, target: str, version: str, action: str, result: PromotionResult) -> None:
    """Move `champion` to `version` and record it; if the record cannot be written, put the
    alias back (an unrecorded move would break the history that rollbacks replay)."""
    name = model_name(target)
    try:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    except Exception as exc:  # noqa: BLE001  (nothing moved: say so in one line)
        raise RegistryError(f"{name}: could not move '{CHAMPION}' to version {version} ({type(exc).__name__}: {exc}); "
                            f"champion left at {result.previous or 'none'}") from exc
    try:
        _retrying(lambda: _record_event(target, action, result))  # a store locked for a moment (sqlite) is waited out
    except Exception as exc:
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"

        def restore():
            if result.previous:
                client.set_registered_model_alias(name, CHAMPION, result.previous)
            else:
                client.delete_registered_model_alias(name, CHAMPION)

        try:
            _retrying(restore)
        except Exception as again:  # noqa: BLE001  (say exactly what state the registry is in)
            raise RegistryError(f"{name}: '{CHAMPION}' moved to version {version} but the {action} could not be recorded ({why}) nor the alias "
                                f"put back ({type(again).__name__}); set it back by hand: tensorcost promote --rollback is refused until then") from None
        raise RegistryError(f"{name}: could not record the {action} of version {version} ({why}); champion left at {result.previous or 'none'}") from None


def _retrying(fn, attempts: int = 4, delay_s: float = 0.2):
    """`fn()`, retried with a doubling delay (about 1.4 s in all) when the store is busy for a moment."""
    for i in range(attempts):
        try:
            return fn()
        except Exception:  # noqa: BLE001  (the last attempt's error is the caller's)
            if i == attempts - 1:
                raise
            time.sleep(delay_s * 2 ** i)


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


REQUIRED_TAGS = ("target", "feature_schema", "eval_data_hash", "validation")


def _tag_problem(tags: dict, target: str, who: str, metric_keys: tuple[str, ...]) -> str | None:
    """Why the tags the gates read cannot be trusted (None: they can): required tags present, the
    version's target the registered model's, metrics finite numbers in [0, 1]."""
    missing = [t for t in REQUIRED_TAGS + tuple(f"metric.{k}" for k in metric_keys) if not str(tags.get(t, "")).strip()]
    if missing:
        return f"{who} lacks the tag(s) {', '.join(missing)}"
    if tags["target"] != target:
        return f"{who} is a model of {tags['target']!r}, not of {target!r}"
    for key in metric_keys:
        raw = tags[f"metric.{key}"]
        try:
            value = float(raw)
        except ValueError:
            return f"{who}'s metric.{key} tag {str(raw)[:40]!r} is not a number"
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            return f"{who}'s metric.{key} tag {str(raw)[:40]!r} is not a finite number in [0, 1]"
    return None


def _check_gates(target: str, version: str, min_gain: float, metric_keys: tuple[str, ...]) -> PromotionResult:
    """The gates; any failed lookup raises (fails closed) rather than passing a gate."""
    tags = dict(_model_version(_client(), target, version).tags)
    champ = get_version(target, CHAMPION)

    def refuse(why: str) -> PromotionResult:
        return PromotionResult(False, target, str(version), champ.version if champ else None, why)

    problem = _tag_problem(tags, target, f"version {version}", metric_keys)
    if problem:
        return refuse(problem)
    if tags.get("validation") != "passed":
        return refuse(f"version {version}: data validation is {tags.get('validation', 'unknown')!r}, not 'passed'")
    if champ is not None:
        problem = _tag_problem(dict(champ.tags), target, f"champion {champ.version}", metric_keys)
        if problem:
            return refuse(f"{problem}: the gates cannot compare against it (promote by hand after checking it)")
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
    ok, why = _artifacts_load(target, str(version), tags)
    if not ok:
        return refuse(f"version {version}: {why}")
    return PromotionResult(True, target, str(version), champ.version if champ else None, "all gates passed")


PROBE_TIMEOUT_S = 60.0  # inside the promotion lock's lease (120 s by default)


def _artifacts_load(target: str, version: str, tags: dict) -> tuple[bool, str]:
    """Whether the version's artifacts hash to their registered digest *and* load and predict on
    a small probe table in a child process within PROBE_TIMEOUT_S: a crash or a hang of the
    model's library is a refusal, not the CLI's death."""
    from .models.probe import probe_model

    with _model_tmpdir() as tmp:
        try:
            directory = download(target, version, Path(tmp), tags)
        except ArtifactIntegrityError as exc:
            return False, str(exc)
        return probe_model(directory, tags.get("feature_schema"), timeout_s=PROBE_TIMEOUT_S)


def promote(target: str, version: str | None = None, min_gain: float = 0.0, metric_keys: tuple[str, ...] = ("pca", "top1", "top5")) -> PromotionResult:
    """Move `champion` to `version` (default: the candidate) if its gates pass; every attempt,
    promoted or refused, is appended to the history.

    Gates: validation passed; same feature schema as the champion; evaluated on the same
    evaluation data as the champion; every metric in `metric_keys` not worse than the
    champion's plus `min_gain` (0: not worse; negative: a tolerated drop). Checked and applied under a per-target lock, so two
    racing promotions end with one consistent champion.
    """
    model_name(target)  # a valid id before any store is opened
    _refuse_synthetic(target)
    client = _client()
    if version is not None:
        version = canonical_version(version)
    with _promotion_lock(target) as lock:
        if version is None:
            cand = get_version(target, CANDIDATE)
            if cand is None:
                raise RegistryError(f"{model_name(target)} has no '{CANDIDATE}' version to promote")
            version = cand.version
        result = _check_gates(target, str(version), min_gain, metric_keys)
        lock.check()  # the alias and `seq` are only ours to write while we hold the lock
        if result.promoted:
            _move_champion(client, target, str(version), "promote", result)
        else:
            try:
                _record_event(target, "refuse", result)
            except Exception as exc:  # noqa: BLE001  (the gate held; say so, and that the history lacks it)
                raise RegistryError(f"{model_name(target)}: promotion of version {version} refused ({' '.join(result.reason.split())}), "
                                    f"but the refusal could not be recorded ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})") from exc
    return result


def rollback(target: str) -> PromotionResult:
    """Restore the champion before the current one, by the history (`_champion_chain`): a
    second rollback goes one further back, not back to where the first started."""
    name = model_name(target)  # a valid id before any store is opened
    client = _client()
    with _promotion_lock(target) as lock:
        champ = get_version(target, CHAMPION)
        if champ is None:
            raise RegistryError(f"{name} has no champion to roll back")
        chain = _champion_chain(history(target))
        if chain and chain[-1] != champ.version:
            raise RegistryError(f"{name}: champion is version {champ.version} but the history's last champion is {chain[-1]} "
                                f"(the alias was moved outside `tensorcost promote`); refusing to guess a rollback target")
        if len(chain) < 2:
            raise RegistryError(f"{name}: no previous champion recorded for version {champ.version}")
        result = PromotionResult(True, target, chain[-2], champ.version, f"rolled back from version {champ.version}")
        lock.check()
        _move_champion(client, target, chain[-2], "rollback", result)
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
