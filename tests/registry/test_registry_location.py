"""Where the registry is: found from the repository, never the working folder; reading it
writes nothing; a moved repository keeps its models loadable (issue 29 item 3)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tensorcost import registry

from helpers import feature_table, register_small_lightgbm, synthetic_ranking_data

TARGET = "testcpu-1c.avx2-t1"


def _repo(path):
    path.mkdir(parents=True)
    (path / "dvc.yaml").write_text("stages: {}\n")
    (path / "params.yaml").write_text("{}\n")
    return path


def test_the_registry_is_the_repositorys_from_any_of_its_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = _repo(tmp_path / "repo")
    (repo / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(repo / "src" / "deep")
    assert registry.tracking_uri() == f"sqlite:///{repo.resolve() / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(registry.RegistryError, match="no tensorcost repository in .* MLFLOW_TRACKING_URI"):
        registry.tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert registry.tracking_uri() == "http://example.invalid:5000"


def test_reading_a_registry_that_does_not_exist_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = _repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    before = sorted(p.name for p in repo.iterdir())
    for read in (registry.list_models, lambda: registry.resolve(TARGET), lambda: registry.history(TARGET)):
        with pytest.raises(registry.RegistryError, match="no model registry at .*mlflow.db yet: `make run`"):
            read()
    assert sorted(p.name for p in repo.iterdir()) == before


def test_a_moved_repository_keeps_its_models_loadable(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    old = _repo(tmp_path / "old")
    monkeypatch.chdir(old)
    version, _ = register_small_lightgbm(old / "work", TARGET, "m", lambda y: y)
    assert (old / "mlruns").is_dir()  # artifacts beside the database, not in the working folder
    x, _, latency, groups = synthetic_ranking_data()
    table = feature_table(x[:20], groups[:20], latency[:20])
    expected = registry.load_version(TARGET, version)[0].predict(table)
    new = tmp_path / "moved" / "clone"
    new.parent.mkdir()
    shutil.move(str(old), str(new))
    monkeypatch.chdir(new)
    model, _ = registry.load_version(TARGET, version)
    np.testing.assert_allclose(model.predict(table), expected)


def test_registry_mistakes_get_one_line_that_names_the_fix(mlflow_store, tmp_path):
    """Issue 29 item 3: an alias typo is not served another alias; a target typo lists the
    registered targets; a version as `registry list` prints it (v1) is accepted."""
    version, _ = register_small_lightgbm(tmp_path, TARGET, "m", lambda y: y)
    with pytest.raises(registry.RegistryError, match="has alias 'candidat'.*aliases it has: candidate"):
        registry.resolve(TARGET, "candidat", fallback=None)
    with pytest.raises(registry.RegistryError, match=r"no registered model tensorcost-testcpu-1c.avx2-t2 .*registered targets: testcpu-1c.avx2-t1"):
        registry.resolve("testcpu-1c.avx2-t2")
    assert registry.resolve(TARGET).version == version  # champion falls back to candidate, said in its message
    assert registry.canonical_version(f"v{version}") == version
    with pytest.raises(registry.RegistryError, match="v3, as `tensorcost registry list` prints it"):
        registry.canonical_version("version1")
