"""Registry robustness (issue 17) against a real MLflow store: artifacts verified before they are
parsed, gates that fail closed, rollbacks that walk the history, no temp dir left behind.

Models are the `random` family (a metadata file, no training) unless a test needs weights."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

from tensorcost import models, registry
from tensorcost.errors import UserError
from tensorcost.models import create_model

TARGET = "testcpu-1c.avx2-t1"
NAME = registry.model_name(TARGET)


def _register(tmp_path: Path, run: str, pca: float = 0.5, family: str = "random") -> str:
    d = tmp_path / "models" / run
    model = create_model(family, TARGET, "tc-feat-x", ["f0", "f1"])
    if family == "lightgbm":  # a real booster file: a few rows, a couple of trees
        import numpy as np
        from helpers import feature_table

        rng = np.random.default_rng(0)
        x = rng.random((60, 2)).astype(np.float32)
        model = create_model(family, TARGET, "tc-feat-x", ["f0", "f1"], num_boost_round=3, min_data_in_leaf=2, num_threads=1)
        model.fit(feature_table(x, np.repeat(["a", "b", "c"], 20), 1e-3 * (1 + x[:, 0])))
    model.save(d)
    tags = {"target": TARGET, "model_family": family, "feature_schema": "tc-feat-x", "eval_data_hash": "e1", "validation": "passed",
            "metric.pca": pca, "metric.top1": pca, "metric.top5": pca}
    return registry.log_and_register(d, TARGET, experiment="t", run_name=run, params={}, metrics={"pca": pca}, tags=tags, alias=registry.CANDIDATE)


def _stored_dir(version: str) -> Path:
    """The registered artifact directory on disk (the local store's copy, not a download)."""
    src = MlflowClient().get_model_version(NAME, version).source
    return Path(urlparse(src).path if src.startswith("file:") else src)


def _champion() -> str | None:
    v = registry.get_version(TARGET, registry.CHAMPION)
    return v.version if v else None


# -- 1. artifacts verified before parsed ---------------------------------------------------------

def test_registration_records_the_content_hash(mlflow_store, tmp_path):
    v = _register(tmp_path, "a", family="lightgbm")
    tags = registry.version_tags(TARGET, v)
    digests = registry.file_digests(tmp_path / "models" / "a")
    assert set(digests) == {"metadata.json", "model.txt"}
    assert tags[registry.ARTIFACT_SHA256_TAG] == registry.artifact_sha256(digests)
    assert json.loads(tags[registry.ARTIFACT_FILES_TAG]) == digests
    model, resolved = registry.load_by_alias(TARGET, registry.CANDIDATE)
    assert model.family == "lightgbm" and resolved.version == v


@pytest.mark.parametrize("damage, expect", [
    (lambda d: (d / "model.txt").write_text((d / "model.txt").read_text()[:500]), "file model.txt differs"),
    (lambda d: (d / "model.txt").unlink(), "file model.txt is missing"),
    (lambda d: (d / "metadata.json").write_text((d / "metadata.json").read_text() + " "), "file metadata.json differs"),
    (lambda d: (d / "extra.bin").write_bytes(b"\x80\x04"), "unexpected file extra.bin"),
])
def test_a_damaged_artifact_is_refused_before_any_family_code_parses_it(mlflow_store, tmp_path, monkeypatch, damage, expect):
    v = _register(tmp_path, "a", family="lightgbm")
    damage(_stored_dir(v))
    parsed = []
    monkeypatch.setattr(models, "load_model", lambda *a, **k: parsed.append(a))
    with pytest.raises(registry.ArtifactIntegrityError) as exc:
        registry.load_by_alias(TARGET, registry.CANDIDATE)
    msg = str(exc.value)
    assert NAME in msg and f"version {v}" in msg and expect in msg and "\n" not in msg
    assert isinstance(exc.value, UserError) and not parsed


def test_a_version_without_the_hash_tag_loads_with_a_warning(mlflow_store, tmp_path, caplog):
    v = _register(tmp_path, "old")
    MlflowClient().delete_model_version_tag(NAME, v, registry.ARTIFACT_SHA256_TAG)
    with caplog.at_level(logging.WARNING, logger="tensorcost.registry"):
        model, _ = registry.load_by_alias(TARGET, registry.CANDIDATE)
    assert model.family == "random" and "unverified" in caplog.text


def test_no_temp_directory_outlives_a_load(mlflow_store, tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    v = _register(tmp_path, "a")
    registry.load_by_alias(TARGET, registry.CANDIDATE)
    assert list(tmp.iterdir()) == []
    (_stored_dir(v) / "metadata.json").write_text("{}")
    with pytest.raises(registry.ArtifactIntegrityError):
        registry.load_by_alias(TARGET, registry.CANDIDATE)
    assert list(tmp.iterdir()) == []  # a refused load cleans up too


# -- 2. gates fail closed ------------------------------------------------------------------------

def _raiser(*args, **kwargs):
    raise MlflowException("database is locked", error_code=INTERNAL_ERROR)


def test_get_version_tells_absent_from_failed(mlflow_store, tmp_path):
    with pytest.raises(registry.RegistryError, match="no model registry at"):
        registry.get_version(TARGET, registry.CHAMPION)  # no store yet: said so, none created
    _register(tmp_path, "a")
    assert registry.get_version(TARGET, registry.CHAMPION) is None  # model, but no such alias
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "get_model_version_by_alias", _raiser)
        with pytest.raises(registry.RegistryError, match="cannot read alias 'champion'.*database is locked"):
            registry.get_version(TARGET, registry.CHAMPION)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "get_model_version_by_alias", lambda *a, **k: (_ for _ in ()).throw(OSError("disk I/O error")))
        with pytest.raises(registry.RegistryError, match="OSError: disk I/O error"):
            registry.get_version(TARGET, registry.CANDIDATE)


@pytest.mark.parametrize("method", ["get_model_version_by_alias", "get_model_version", "set_registered_model_alias", "search_runs", "create_run"])
def test_a_failed_lookup_stops_a_promotion_and_keeps_the_champion(mlflow_store, tmp_path, method):
    v1 = _register(tmp_path, "v1", 0.5)
    assert registry.promote(TARGET, v1).promoted
    v2 = _register(tmp_path, "v2", 0.9)  # better: would pass every gate
    before = registry.history(TARGET)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, method, _raiser)
        with pytest.raises(registry.RegistryError) as exc:
            registry.promote(TARGET)  # the candidate, v2
    assert "\n" not in str(exc.value)
    assert _champion() == v1
    assert registry.history(TARGET) == before  # nothing recorded for a promotion that did not happen
    assert registry.promote(TARGET).promoted and _champion() == v2  # and the store works afterwards


@pytest.mark.parametrize("method", ["get_model_version_by_alias", "search_runs", "set_registered_model_alias", "create_run"])
def test_a_failed_lookup_stops_a_rollback_and_keeps_the_champion(mlflow_store, tmp_path, method):
    v1, v2 = _register(tmp_path, "v1"), _register(tmp_path, "v2")
    assert registry.promote(TARGET, v1).promoted and registry.promote(TARGET, v2).promoted
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, method, _raiser)
        with pytest.raises(registry.RegistryError):
            registry.rollback(TARGET)
    assert _champion() == v2
    assert registry.rollback(TARGET).version == v1


# -- history and rollback ------------------------------------------------------------------------

def test_repeated_rollbacks_walk_back_through_the_history(mlflow_store, tmp_path):
    v1, v2, v3 = (_register(tmp_path, f"v{i}") for i in (1, 2, 3))
    for v in (v1, v2, v3):
        assert registry.promote(TARGET, v).promoted  # equal metrics pass (min gain 0)
    r = registry.rollback(TARGET)
    assert (r.version, r.previous, _champion()) == (v2, v3, v2)
    r = registry.rollback(TARGET)
    assert (r.version, r.previous, _champion()) == (v1, v2, v1)  # further back, not back to v3
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback(TARGET)
    assert registry.promote(TARGET, v3).promoted
    assert registry.rollback(TARGET).version == v1
    events = [(e["action"], e["version"], e["previous"]) for e in registry.history(TARGET)]
    assert events == [("promote", v1, ""), ("promote", v2, v1), ("promote", v3, v2), ("rollback", v2, v3),
                      ("rollback", v1, v2), ("promote", v3, v1), ("rollback", v1, v3)]
    assert [e["seq"] for e in registry.history(TARGET)] == [str(i) for i in range(1, 8)]


def test_champion_moves_only_through_promote(mlflow_store, tmp_path):
    v = _register(tmp_path, "a")
    with pytest.raises(registry.RegistryError, match="promote"):
        registry.set_alias(TARGET, registry.CHAMPION, v)
    assert _champion() is None


def test_a_champion_moved_outside_promote_refuses_a_rollback(mlflow_store, tmp_path):
    v1, v2 = _register(tmp_path, "v1"), _register(tmp_path, "v2")
    assert registry.promote(TARGET, v1).promoted and registry.promote(TARGET, v2).promoted
    MlflowClient().set_registered_model_alias(NAME, registry.CHAMPION, v1)  # behind the registry's back
    with pytest.raises(registry.RegistryError, match="moved outside"):
        registry.rollback(TARGET)
    assert _champion() == v1


# -- 4. quotes never reach a filter --------------------------------------------------------------

def test_a_quote_in_a_target_never_reaches_the_history_filter(mlflow_store, tmp_path):
    _register(tmp_path, "a")
    assert registry.promote(TARGET).promoted
    for bad in ("x'y-1c.avx2-t1", "testcpu-1c.avx2-t1' OR tags.target LIKE '%", "a\\b-1c.avx2-t1"):
        with pytest.raises(UserError):
            registry.history(bad)
    with pytest.raises(registry.RegistryError, match="quote"):
        registry.filter_value("it's")
    assert [e["action"] for e in registry.history(TARGET)] == ["promote"]


def test_a_written_event_that_cannot_be_closed_still_counts_as_recorded(mlflow_store, tmp_path):
    # Audit case: the history run was written, closing it failed, the alias was put back, and the
    # history then said v2 while the champion was v1 (so the next rollback refused).
    v1, v2 = _register(tmp_path, "v1", 0.5), _register(tmp_path, "v2", 0.9)
    assert registry.promote(TARGET, v1).promoted
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "set_terminated", _raiser)
        assert registry.promote(TARGET, v2).promoted
    assert _champion() == v2 and registry.history(TARGET)[-1]["version"] == v2
    assert registry.rollback(TARGET).version == v1  # history and alias agree


def test_a_refusal_that_cannot_be_recorded_is_one_line_and_the_gate_holds(mlflow_store, tmp_path):
    v1, v2 = _register(tmp_path, "v1", 0.9), _register(tmp_path, "v2", 0.5)
    assert registry.promote(TARGET, v1).promoted
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "create_run", _raiser)
        with pytest.raises(registry.RegistryError, match="refused .*could not be recorded") as exc:
            registry.promote(TARGET, v2)
    assert "\n" not in str(exc.value) and _champion() == v1


def test_a_store_locked_for_a_moment_while_the_event_is_written_is_waited_out(mlflow_store, tmp_path):
    """The issue's case: a sqlite lock held while the history event is written left `champion`
    moved with no event. A short lock is now waited out: moved and recorded."""
    v1 = _register(tmp_path, "v1", 0.5)
    real = MlflowClient.create_run
    calls = {"n": 0}

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise MlflowException("database is locked", error_code=INTERNAL_ERROR)
        return real(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "create_run", flaky)
        assert registry.promote(TARGET, v1).promoted
    assert _champion() == v1 and [e["version"] for e in registry.history(TARGET) if e["action"] == "promote"] == [v1]


def test_an_event_that_cannot_be_written_puts_the_alias_back_in_one_line(mlflow_store, tmp_path):
    v1 = _register(tmp_path, "v1", 0.5)
    assert registry.promote(TARGET, v1).promoted
    v2 = _register(tmp_path, "v2", 0.9)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "create_run", _raiser)
        with pytest.raises(registry.RegistryError) as exc:
            registry.promote(TARGET, v2)
    assert "\n" not in str(exc.value) and "champion left at" in str(exc.value)
    assert _champion() == v1
