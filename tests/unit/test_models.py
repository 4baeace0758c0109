"""LightGBM cost model: learns a simple ranking, saves/loads without pickle, guards its schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensorcost.features import per_task_labels
from tensorcost.metrics import pairwise_comparison_accuracy
from tensorcost.models import FeatureSchemaMismatch, load_model, read_metadata
from tensorcost.models.lightgbm_model import MODEL_FILE, LightGBMCostModel

N_FEATURES = 4
NAMES = [f"f{i}" for i in range(N_FEATURES)]
SMALL = {"num_boost_round": 40, "num_threads": 1, "min_data_in_leaf": 5, "seed": 0}


def _problem(n_groups: int, per_group: int, seed: int):
    """Latency is a known, strictly monotone function of feature 0 (bigger f0 = faster);
    the other features are noise. Each group has its own latency scale."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, size=(n_groups * per_group, N_FEATURES))
    groups = np.repeat([f"g{seed}-{g}" for g in range(n_groups)], per_group)
    scale = np.repeat(rng.uniform(1e-4, 1e-2, size=n_groups), per_group)
    latency = scale * np.exp(-0.3 * x[:, 0])
    return x.astype(np.float32), groups, latency


@pytest.fixture(scope="module")
def trained():
    x, groups, lat = _problem(10, 30, seed=1)
    model = LightGBMCostModel.create("cpu-avx2-t1", "tc-feat-test", NAMES, **SMALL)
    model.fit(x, per_task_labels(groups, lat), groups)
    return model


def test_learns_the_ranking(trained):
    # fresh groups never seen in training
    x, groups, lat = _problem(5, 30, seed=2)
    scores = trained.predict(x)
    assert scores.shape == (len(x),)
    pca = pairwise_comparison_accuracy(groups, scores, lat)
    assert pca > 0.8
    # and the opposite ranking would be scored badly: sanity check that PCA sees the order
    assert pairwise_comparison_accuracy(groups, -scores, lat) < 0.2


def test_regression_objective_also_learns():
    x, groups, lat = _problem(10, 30, seed=1)
    model = LightGBMCostModel.create("cpu-avx2-t1", "tc-feat-test", NAMES, objective="regression", **SMALL)
    model.fit(x, per_task_labels(groups, lat), groups)
    xt, gt, lt = _problem(5, 30, seed=2)
    assert pairwise_comparison_accuracy(gt, model.predict(xt), lt) > 0.8


def test_unknown_objective_raises():
    with pytest.raises(ValueError, match="objective"):
        LightGBMCostModel.create("t", "s", NAMES, objective="poisson")


def test_relevance_grades():
    # floor(l * 30 + 0.5): 1 -> 30, 0.5 -> 15, 0.01 -> floor(0.8) = 0, 0.02 -> floor(1.1) = 1
    np.testing.assert_array_equal(LightGBMCostModel.relevance(np.array([1.0, 0.5, 0.01, 0.02])), [30, 15, 0, 1])


def test_save_load_roundtrip_predicts_identically(trained, tmp_path):
    d = tmp_path / "model"
    trained.save(d)
    x, _, _ = _problem(3, 10, seed=3)
    loaded = LightGBMCostModel.load(d)
    np.testing.assert_array_equal(loaded.predict(x), trained.predict(x))
    assert loaded.metadata == trained.metadata
    # the generic loader gives the same model
    generic = load_model(d, expected_feature_schema="tc-feat-test")
    assert isinstance(generic, LightGBMCostModel)
    np.testing.assert_array_equal(generic.predict(x), trained.predict(x))


def test_artifact_dir_has_text_model_and_metadata_only(trained, tmp_path):
    d = tmp_path / "model"
    trained.save(d)
    files = {p.name for p in d.iterdir()}
    assert files == {MODEL_FILE, "metadata.json"}
    assert not [p for p in d.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    # nothing in the directory is a pickle stream (protocol 2+ starts with 0x80)
    for p in d.iterdir():
        assert not p.read_bytes().startswith(b"\x80")
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["family"] == "lightgbm"
    assert meta["feature_schema"] == "tc-feat-test"
    assert meta["target"] == "cpu-avx2-t1"
    assert meta["feature_names"] == NAMES
    assert read_metadata(d).objective == "lambdarank"
    assert (d / MODEL_FILE).read_text().startswith("tree")  # LightGBM's text format


def test_load_model_schema_mismatch_names_both_versions(trained, tmp_path):
    d = tmp_path / "model"
    trained.save(d)
    with pytest.raises(FeatureSchemaMismatch) as exc:
        load_model(d, expected_feature_schema="tc-feat-999")
    msg = str(exc.value)
    assert "tc-feat-test" in msg and "tc-feat-999" in msg
    assert issubclass(FeatureSchemaMismatch, ValueError)


def test_load_model_unknown_family(trained, tmp_path):
    d = tmp_path / "model"
    trained.save(d)
    meta = json.loads((d / "metadata.json").read_text())
    meta["family"] = "mystery"
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown model family 'mystery'"):
        load_model(d)


def test_load_model_not_a_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        load_model(tmp_path)


def test_predict_wrong_feature_count_raises(trained):
    with pytest.raises(ValueError, match=rf"\(n, {N_FEATURES}\)"):
        trained.predict(np.zeros((3, N_FEATURES + 1), dtype=np.float32))
    with pytest.raises(ValueError):
        trained.predict(np.zeros(N_FEATURES, dtype=np.float32))  # 1-D


def test_predict_untrained_raises():
    model = LightGBMCostModel.create("t", "s", NAMES)
    with pytest.raises(RuntimeError, match="not trained"):
        model.predict(np.zeros((1, N_FEATURES)))
