"""Where the registry is and how to reach it: the repository's sqlite store or a tracking server (MLFLOW_TRACKING_URI), the client (a store is never created to be read), relocated artifacts, the registry's one-line errors."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

from filelock import FileLock

from ..errors import UserError
from ..hardware import split_target_id

log = logging.getLogger(__name__)


REGISTRY_DB = "mlflow.db"  # the embedded registry: this file at the repository's root


CANDIDATE, CHAMPION = "candidate", "champion"


MODEL_ARTIFACT_PATH = "model"


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
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path):
        yield


_STORES_READY: set[str] = set()  # stores this process has created/migrated (MLflow caches them per URI)


def open_client(create: bool = False):
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


def filter_value(value: str) -> str:
    """`value` quoted for an MLflow search filter. Targets are validated ids, but the filter must
    not depend on that: a quote or backslash would end or escape the string literal."""
    if "'" in value or "\\" in value:
        raise RegistryError(f"{value!r} cannot be used in a registry search (quote or backslash)")
    return f"'{value}'"


def _epoch_iso(value: str | None) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(value or ""), datetime.timezone.utc).isoformat(timespec="seconds")
    except ValueError:
        return "?"
