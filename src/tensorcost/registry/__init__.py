"""MLflow model registry: register, tag, alias, promote, load by alias. MLflow lives only here.

One registered model per hardware target, `tensorcost-<target>`. Aliases: `candidate` (set on
registration) and `champion` (set only by `promote`). Artifacts are our own model directories
(text/JSON/safetensors), downloaded and loaded by `models.load_model`: nothing is unpickled.

Fail closed: a registry lookup that fails for any reason other than "no such model/alias" stops
the caller (a promotion never passes its gates because the champion could not be read), and a
downloaded version is checked against the content hash recorded at registration before any
family code parses its files.

One job a file: `store` (where the registry is, the client, its errors), `integrity` (artifact
hashes), `versions` (register, aliases, tags, resolve, download, load), `lock` (the promotion
lock: a file lock or a lease held in the registry) and `promotion` (gates, history, rollback).
"""

from __future__ import annotations

from .integrity import ARTIFACT_FILES_TAG, ARTIFACT_SHA256_TAG, MLFLOW_WRITTEN, artifact_sha256, file_digests, verify_artifacts
from .lock import LOCK_LEASE_ENV, LOCK_PREFIX, LOCK_TIMEOUT_ENV, RegistryLock, lock_model_name
from .promotion import HISTORY_EXPERIMENT, PROBE_TIMEOUT_S, REQUIRED_TAGS, PromotionResult, champion_chain, history, promote, rollback
from .store import CANDIDATE, CHAMPION, MODEL_ARTIFACT_PATH, PREFIX, REGISTRY_DB, ArtifactIntegrityError, RegistryError, filter_value, location, model_name, open_client, project_root, tracking_uri
from .versions import (
    MODEL_TMP_PREFIX,
    MODEL_URI,
    ResolvedVersion,
    canonical_version,
    download,
    get_version,
    list_models,
    load_by_alias,
    load_uri,
    load_version,
    log_and_register,
    model_card_tags,
    register_trained,
    register_transferred,
    resolve,
    set_alias,
    set_tags,
    target_of,
    version_tags,
)

__all__ = ["ARTIFACT_FILES_TAG", "ARTIFACT_SHA256_TAG", "ArtifactIntegrityError", "CANDIDATE", "CHAMPION", "HISTORY_EXPERIMENT", "LOCK_LEASE_ENV", "LOCK_PREFIX", "LOCK_TIMEOUT_ENV", "MLFLOW_WRITTEN", "MODEL_ARTIFACT_PATH", "MODEL_TMP_PREFIX", "MODEL_URI", "PREFIX", "PROBE_TIMEOUT_S", "PromotionResult", "REGISTRY_DB", "REQUIRED_TAGS", "RegistryError", "RegistryLock", "ResolvedVersion", "artifact_sha256", "canonical_version", "champion_chain", "download", "file_digests", "filter_value", "get_version", "history", "list_models", "load_by_alias", "load_uri", "load_version", "location", "lock_model_name", "log_and_register", "model_card_tags", "model_name", "open_client", "project_root", "promote", "register_trained", "register_transferred", "resolve", "rollback", "set_alias", "set_tags", "target_of", "tracking_uri", "verify_artifacts", "version_tags"]
