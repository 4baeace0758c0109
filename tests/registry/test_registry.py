"""Registry behaviour against a real MLflow store with real (small) LightGBM models."""

import subprocess
import sys

import numpy as np
import pytest

from tensorcost import registry
from tensorcost.features import FEATURE_SCHEMA_VERSION
from tensorcost.models import FeatureSchemaMismatch

from helpers import register_small_lightgbm, synthetic_ranking_data

TARGET = "testcpu-1c.avx2-t1"


def _register(tmp_path, name, labels_for_training, validation="passed", schema=FEATURE_SCHEMA_VERSION):
    return register_small_lightgbm(tmp_path, TARGET, name, labels_for_training, validation=validation, schema=schema)


def test_register_sets_candidate_and_tags(mlflow_store, tmp_path):
    version, rep = _register(tmp_path, "good", lambda y: y)
    resolved = registry.resolve(TARGET, registry.CHAMPION)
    assert resolved.alias == registry.CANDIDATE and resolved.version == version
    assert "falling back" in resolved.message
    assert float(resolved.tags["metric.pca"]) == pytest.approx(rep.pca)
    model, r = registry.load_by_alias(TARGET, registry.CANDIDATE, expected_feature_schema=FEATURE_SCHEMA_VERSION)
    from helpers import feature_table

    x, _, latency, groups = synthetic_ranking_data()
    assert model.predict(feature_table(x[:5], groups[:5], latency[:5])).shape == (5,)


def test_promotion_gates(mlflow_store, tmp_path):
    good, good_rep = _register(tmp_path, "good", lambda y: y)
    assert good_rep.pca > 0.8
    res = registry.promote(TARGET)
    assert res.promoted and res.version == good
    assert registry.get_version(TARGET, registry.CHAMPION).version == good

    # A real model trained on reversed labels: it ranks worse on the same evaluation data.
    worse, worse_rep = _register(tmp_path, "worse", lambda y: 1.0 - y + 1e-3)
    assert worse_rep.pca < good_rep.pca
    res = registry.promote(TARGET, worse)
    assert not res.promoted and "pca" in res.reason and "worse" in res.reason
    assert registry.get_version(TARGET, registry.CHAMPION).version == good

    failed, _ = _register(tmp_path, "failed-validation", lambda y: y, validation="failed")
    res = registry.promote(TARGET, failed)
    assert not res.promoted and "validation" in res.reason

    other_schema, _ = _register(tmp_path, "other-schema", lambda y: y, schema="tc-feat-0")
    res = registry.promote(TARGET, other_schema)
    assert not res.promoted and "feature schema" in res.reason

    # With a tolerated drop wide enough (negative min gain), the worse model may be promoted.
    res = registry.promote(TARGET, worse, min_gain=-1.0)
    assert res.promoted and res.previous == good


def test_load_refuses_feature_schema_mismatch(mlflow_store, tmp_path):
    _register(tmp_path, "good", lambda y: y)
    with pytest.raises(FeatureSchemaMismatch, match="tc-feat-999"):
        registry.load_by_alias(TARGET, registry.CANDIDATE, expected_feature_schema="tc-feat-999")


def test_resolve_without_any_version_is_clear(mlflow_store, tmp_path):
    with pytest.raises(registry.RegistryError, match="no model registry at .* yet: `make run`"):
        registry.resolve("none-1c.avx2-t1")  # no store at all: said so, and none is created
    _register(tmp_path, "other", lambda y: y)
    with pytest.raises(registry.RegistryError, match="no registered model tensorcost-none-1c.avx2-t1 .*registered targets: testcpu-1c.avx2-t1"):
        registry.resolve("none-1c.avx2-t1")


def test_promote_cli_refusal_exit_code(mlflow_store, tmp_path):
    _register(tmp_path, "good", lambda y: y)
    assert registry.promote(TARGET).promoted
    worse, _ = _register(tmp_path, "worse", lambda y: 1.0 - y + 1e-3)
    proc = subprocess.run([sys.executable, "-m", "tensorcost.cli", "promote", "--target", TARGET, "--version", worse], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "refused" in proc.stderr and "pca" in proc.stderr


def _noisy(scale, seed=1):
    def f(y):
        return np.clip(y + np.random.default_rng(seed).normal(0, scale, len(y)), 0.01, 1.0)
    return f


def test_history_and_rollback(mlflow_store, tmp_path):
    v1, _ = _register(tmp_path, "v1", lambda y: y)
    assert registry.promote(TARGET, v1).promoted
    worse, _ = _register(tmp_path, "worse", lambda y: 1.0 - y + 1e-3)
    assert not registry.promote(TARGET, worse).promoted
    assert registry.promote(TARGET, worse, min_gain=-1.0).promoted
    events = registry.history(TARGET)
    assert [(e["action"], e["version"], e["previous"]) for e in events] == [
        ("promote", v1, ""), ("refuse", worse, v1), ("promote", worse, v1)]
    assert "worse" in events[1]["reason"] and events[0]["actor"]
    res = registry.rollback(TARGET)
    assert res.version == v1 and res.previous == worse
    assert registry.get_version(TARGET, registry.CHAMPION).version == v1
    assert registry.history(TARGET)[-1]["action"] == "rollback"
    rows = registry.list_models()
    assert rows[0]["target"] == TARGET and rows[0]["champion"]["version"] == v1 and rows[0]["candidate"]["version"] == worse


def test_rollback_without_history_is_refused(mlflow_store, tmp_path):
    _register(tmp_path, "v1", lambda y: y)
    with pytest.raises(registry.RegistryError, match="no champion"):
        registry.rollback(TARGET)


RACER = """
import sys, time
from tensorcost import registry
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
r = registry.promote("{target}", sys.argv[1])
print(r.promoted, r.version, r.previous)
"""


def test_two_racing_promotions_end_consistent(mlflow_store, tmp_path):
    import os
    import time

    v1, r1 = _register(tmp_path, "v1", _noisy(0.6))
    assert registry.promote(TARGET, v1).promoted
    v2, r2 = _register(tmp_path, "v2", _noisy(0.2))
    v3, r3 = _register(tmp_path, "v3", lambda y: y)
    assert r1.pca < r2.pca < r3.pca  # real models of increasing quality on the same evaluation data
    script = tmp_path / "racer.py"
    script.write_text(RACER.format(target=TARGET))
    start = str(time.time() + 4.0)  # both processes released at the same instant
    procs = [subprocess.Popen([sys.executable, str(script), v, start], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for v in (v2, v3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    events = registry.history(TARGET)[1:]  # after v1's promotion
    assert sorted(e["version"] for e in events) == sorted([v2, v3])  # both attempts recorded
    # Whatever the order, the best one ends as champion and the chain of champions is consistent.
    champion = registry.get_version(TARGET, registry.CHAMPION).version
    assert champion == v3
    current = v1
    for e in events:
        assert e["previous"] == current, events
        if e["promoted"] == "true":
            current = e["version"]
    assert current == champion


def test_a_version_saved_before_metadata_digests_still_loads_from_the_registry(mlflow_store, tmp_path):
    """The registry's artifact hash vouches for a version's bytes: one registered before model
    metadata carried its own digest (its metadata.json has none, and the version's hash tags are
    of those bytes) loads from the registry, while the same directory as a local path is refused."""
    import hashlib
    import json

    from tensorcost.models import ModelFormatError, load_model
    from tensorcost.models.base import METADATA_FILE

    version, _ = _register(tmp_path, "first", lambda y: y)
    model, _ = registry.load_version(TARGET, version)
    stored = next((tmp_path / "mlruns").rglob(METADATA_FILE)).parent  # the registered artifact, as an older tensorcost wrote it
    meta = json.loads((stored / METADATA_FILE).read_text())
    del meta["metadata_sha256"]
    (stored / METADATA_FILE).write_text(json.dumps(meta))
    digests = {p.relative_to(stored).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(stored.rglob("*")) if p.is_file()}
    registry.set_tags(TARGET, version, {registry.ARTIFACT_SHA256_TAG: registry.artifact_sha256(digests),
                                        registry.ARTIFACT_FILES_TAG: json.dumps(digests, sort_keys=True)})
    with pytest.raises(ModelFormatError, match="no metadata_sha256"):
        load_model(stored)
    again, _ = registry.load_version(TARGET, version)
    x, _, latency, groups = synthetic_ranking_data()
    from helpers import feature_table

    table = feature_table(x[:20], groups[:20], latency[:20])
    np.testing.assert_allclose(again.predict(table), model.predict(table))


def test_a_transferred_model_is_registered_with_its_card(mlflow_store, tmp_path):
    """The transfer stage's registration: the gates' tags, the source versions, the reason and the
    figures the choice was made on, under the alias asked for."""
    from helpers import feature_table
    from tensorcost.models import create_model

    x, _, latency, groups = synthetic_ranking_data()
    model = create_model("random", TARGET, FEATURE_SCHEMA_VERSION, ["f0", "f1", "f2", "f3"])
    model.fit(feature_table(x, groups, latency))
    model.save(tmp_path / "m")
    metrics = {"pca": 0.81, "top1": 0.5, "top5": 0.9}
    version = registry.register_transferred(
        tmp_path / "m", TARGET, approach="finetune:zen5-2c.avx2-t1", k="25", reason="best on the test side", chosen_on="the transfer's test side of host",
        metrics=metrics, family="random", objective=model.metadata.objective, feature_schema=FEATURE_SCHEMA_VERSION,
        source_ref="tensorcost-zen5-2c.avx2-t1/3", data_tags={"train_data_hash": "h", "eval_data_hash": "transfer:h:0.5:0", "validation_passed": True},
        experiment="t", git_commit="abc", alias="transferred")
    got = registry.get_version(TARGET, "transferred")
    assert got.version == version
    t = got.tags
    assert (t["split"], t["source_model"], t["model_key"], t["validation"], t["feature_schema"]) == (
        "transfer:25%", "tensorcost-zen5-2c.avx2-t1/3", "finetune:zen5-2c.avx2-t1", "passed", FEATURE_SCHEMA_VERSION)
    assert float(t["metric.pca"]) == pytest.approx(0.81)
    mv = registry.open_client().get_model_version(registry.model_name(TARGET), version)
    assert "best on the test side" in mv.description and "PCA 0.810" in mv.description
