"""Artifact integrity: a sha256 over a version's files, recorded at registration and checked before any family code parses a downloaded version."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..digest import file_sha256
from .store import ArtifactIntegrityError

log = logging.getLogger(__name__)


ARTIFACT_SHA256_TAG = "artifact_sha256"  # sha256 over the model directory's files (names included)


ARTIFACT_FILES_TAG = "artifact_files"  # JSON {relative path: sha256}: names the file that differs


# MLflow writes this into a version's folder when `mlflow.pyfunc.load_model("models:/...")` loads it
# (on a local artifact store, into the store itself); the project never reads it
MLFLOW_WRITTEN = frozenset({"registered_model_meta"})


def file_digests(directory: Path) -> dict[str, str]:
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
    actual = file_digests(directory)
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
