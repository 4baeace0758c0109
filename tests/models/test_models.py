"""LightGBM cost model: learns a simple ranking, saves/loads without pickle, guards its schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensorcost.metrics import pairwise_comparison_accuracy
from tensorcost.models import FeatureSchemaMismatch, ModelFormatError, load_model, read_metadata
from tensorcost.models.base import seal_metadata
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


def _table(n_groups: int, per_group: int, seed: int):
    from helpers import feature_table

    x, groups, lat = _problem(n_groups, per_group, seed)
    return feature_table(x, groups, lat)


@pytest.fixture(scope="module")
def trained():
    model = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, **SMALL)
    model.fit(_table(10, 30, seed=1))
    return model


def test_learns_the_ranking(trained):
    # fresh groups never seen in training
    x, groups, lat = _problem(5, 30, seed=2)
    scores = trained.predict(_table(5, 30, seed=2))
    assert scores.shape == (len(x),)
    pca = pairwise_comparison_accuracy(groups, scores, lat)
    assert pca > 0.8
    # and the opposite ranking would be scored badly: sanity check that PCA sees the order
    assert pairwise_comparison_accuracy(groups, -scores, lat) < 0.2


def test_regression_objective_also_learns():
    model = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", **SMALL)
    model.fit(_table(10, 30, seed=1))
    _, gt, lt = _problem(5, 30, seed=2)
    assert pairwise_comparison_accuracy(gt, model.predict(_table(5, 30, seed=2)), lt) > 0.8


def test_warm_start_adds_trees_and_keeps_the_ranking(trained):
    import copy

    model = copy.deepcopy(trained)
    before = model.booster.num_trees()
    model.fit(_table(4, 30, seed=5), warm_start=True)
    assert model.booster.num_trees() == before + 50  # finetune_rounds
    _, gt, lt = _problem(5, 30, seed=2)
    assert pairwise_comparison_accuracy(gt, model.predict(_table(5, 30, seed=2)), lt) > 0.8


def test_unknown_objective_raises():
    with pytest.raises(ValueError, match="objective"):
        LightGBMCostModel.create("t", "s", NAMES, objective="poisson")


def test_relevance_grades():
    # floor(l * 30 + 0.5): 1 -> 30, 0.5 -> 15, 0.01 -> floor(0.8) = 0, 0.02 -> floor(1.1) = 1
    np.testing.assert_array_equal(LightGBMCostModel.relevance(np.array([1.0, 0.5, 0.01, 0.02])), [30, 15, 0, 1])


def test_save_load_roundtrip_predicts_identically(trained, tmp_path):
    d = tmp_path / "model"
    trained.save(d)
    x = _table(3, 10, seed=3)
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
    assert meta["target"] == "testcpu-1c.avx2-t1"
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
    with pytest.raises(ModelFormatError, match="does not match its metadata_sha256"):
        load_model(d)  # an edit is refused as such
    seal_metadata(d)  # a careful editor: the family table still refuses it
    with pytest.raises(ModelFormatError, match="unknown model family 'mystery'"):
        load_model(d)


def test_load_model_not_a_model_dir(tmp_path):
    with pytest.raises(ModelFormatError, match="metadata.json"):
        load_model(tmp_path)


def test_predict_wrong_feature_count_raises(trained):
    from helpers import feature_table

    with pytest.raises(ValueError, match=rf"\(n, {N_FEATURES}\)"):
        trained.predict(feature_table(np.zeros((3, N_FEATURES + 1)), ["a"] * 3, [1.0] * 3))


def test_predict_untrained_raises():
    model = LightGBMCostModel.create("t", "s", NAMES)
    with pytest.raises(RuntimeError, match="not trained"):
        model.predict(_table(1, 2, seed=0))


def test_every_family_honours_the_contract(tmp_path, make_row):
    """Each family of the registry trains from the same feature table (real featurized records),
    predicts one score per row, saves and loads to the same predictions, and describes itself:
    no caller branches on the family."""
    from tensorcost.features import FeatureTable, featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.models import FAMILIES, create_model
    from tensorcost.records import to_table

    rng = np.random.default_rng(0)
    rows = [make_row(i, task_id=f"{t:016x}", latency=float(rng.uniform(1e-4, 1e-3))) for t in range(4) for i in range(12)]
    frame = featurize_table(to_table(rows), [1.0] * len(HARDWARE_FEATURE_NAMES), HARDWARE_FEATURE_NAMES)
    table = FeatureTable(frame, "testcpu-1c.avx2-t1")
    names = frame.attrs["feature_names"]
    from tensorcost.models import family_class

    for family in FAMILIES:
        if "ms_features" in family_class(family).inputs:
            continue  # reads MetaSchedule features (TVM): the pipeline test, and lightgbm_joint's own test below
        tiny_attention = {"epochs": 1, "d_model": 8, "n_heads": 2, "n_layers": 1, "max_len": 8}
        params = {"attention": tiny_attention,
                  "ensemble": {"members": [{"family": "lightgbm", "params": {"num_boost_round": 10}}, {"family": "attention", "params": tiny_attention}]},
                  }.get(family, {})
        model = create_model(family, "testcpu-1c.avx2-t1", "tc-feat-test", names, **params)
        model.fit(table)
        scores = model.predict(table)
        assert scores.shape == (len(table),) and np.isfinite(scores).all(), family
        model.save(tmp_path / family)
        again = load_model(tmp_path / family)
        assert type(again) is type(model)
        if family != "random":
            np.testing.assert_allclose(again.predict(table), scores, rtol=1e-6)
        d = again.describe()
        assert d["family"] == family and d["feature_schema"] == "tc-feat-test" and isinstance(d["inputs"], list)


def test_group_relative_features_are_deviations_from_the_group_mean():
    from tensorcost.models.lightgbm_model import group_relative_features

    x = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 0.0]], dtype=np.float32)
    out = group_relative_features(x, ["a", "a", "b"])
    np.testing.assert_allclose(out[:, :2], x)
    np.testing.assert_allclose(out[:, 2:], [[-1.0, -5.0], [1.0, 5.0], [0.0, 0.0]])


def test_group_relative_model_learns_and_round_trips(tmp_path):
    # the ranking feature shifted by a per-group offset the training side never saw: the deviation
    # from the group's mean still ranks it
    model = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, group_relative=True, **SMALL)
    model.fit(_table(10, 30, seed=1))
    assert model.booster.num_feature() == 2 * N_FEATURES
    x, groups, lat = _problem(5, 30, seed=2)
    from helpers import feature_table

    shifted = feature_table(x + np.float32(25.0) * (x[:, :1] > -1), groups, lat)  # every feature out of the training range
    assert pairwise_comparison_accuracy(groups, model.predict(shifted), lat) > 0.8
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m", expected_feature_schema="tc-feat-test")
    np.testing.assert_allclose(loaded.predict(shifted), model.predict(shifted))


def test_joint_model_reads_the_metaschedule_features_beside_ours(tmp_path):
    """lightgbm_joint: the flat features are noise here, one per-store MetaSchedule feature decides
    the latency; the joint model ranks held-out tasks by it, a flat-only LightGBM cannot, and
    the joint model round-trips through save/load with the pooled columns counted."""
    from tensorcost.features.metaschedule import MS_FEATURE_DIM
    from tensorcost.models.lightgbm_model import LightGBMJointCostModel, pooled_ms_features

    from helpers import feature_table

    def table(seed):
        x, groups, lat = _problem(12, 25, seed)
        rng = np.random.default_rng(seed + 100)
        t = feature_table(x, groups, lat[rng.permutation(len(lat))])  # f0 no longer decides
        ms = []
        for v in t.frame["label"].to_numpy():
            m = rng.uniform(0, 1, size=(int(rng.integers(1, 4)), MS_FEATURE_DIM)).astype(np.float32)
            m[:, 7] = v  # one store feature carries the speed relative to the task's best, on every store
            ms.append(m)
        t.ms_features = ms
        return t

    train, test = table(1), table(2)
    joint = LightGBMJointCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", **SMALL)
    joint.fit(train)
    flat = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", **SMALL)
    flat.fit(train)
    lat = test.frame["latency_s"].to_numpy()
    assert pairwise_comparison_accuracy(test.groups, joint.predict(test), lat) > 0.9
    assert pairwise_comparison_accuracy(test.groups, flat.predict(test), lat) < 0.65
    assert joint.booster.num_feature() == N_FEATURES + 2 * MS_FEATURE_DIM + 1
    joint.save(tmp_path / "joint")
    again = load_model(tmp_path / "joint")
    assert type(again) is LightGBMJointCostModel and again.describe()["inputs"] == ["flat", "ms_features"]
    np.testing.assert_allclose(again.predict(test), joint.predict(test), rtol=1e-6)
    test.ms_features = None
    with pytest.raises(Exception, match="MetaSchedule features"):
        joint.predict(test)
    pooled = pooled_ms_features([np.ones((2, MS_FEATURE_DIM)), np.zeros((0, MS_FEATURE_DIM))])
    assert pooled.shape == (2, 2 * MS_FEATURE_DIM + 1) and pooled[0, -1] == 2 and pooled[1, -1] == 0 and not pooled[1, :-1].any()


def test_feature_fraction_and_l2_reach_lightgbm_and_stay_deterministic(tmp_path):
    # the regularizers are LightGBM's own params: they reach the booster (its model text says so),
    # change the trees, and a seeded fit gives the same model twice
    table = _table(10, 30, seed=1)

    def fitted(**extra):
        m = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", **SMALL, **extra)
        m.fit(table)
        return m

    plain, a, b = fitted(), fitted(feature_fraction=0.5, lambda_l2=2.0), fitted(feature_fraction=0.5, lambda_l2=2.0)
    text = a.booster.model_to_string()
    assert "[feature_fraction: 0.5]" in text and "[lambda_l2: 2]" in text
    np.testing.assert_array_equal(a.predict(table), b.predict(table))
    assert not np.allclose(a.predict(table), plain.predict(table))
    with pytest.raises(ModelFormatError, match="feature_fraction"):
        LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, feature_fraction=0.0)


@pytest.mark.parametrize("transform, fitted", [("sqrt", np.sqrt), ("log", lambda y: np.log2(np.clip(y, 2.0 ** -20, None)))])
def test_label_transform_fits_the_transformed_label_and_round_trips(tmp_path, transform, fitted):
    # the regression fits f(label): its mean prediction on its own rows is the mean of f(label),
    # not the labels'; the setting travels with the model and a typo is refused
    table = _table(10, 30, seed=1)
    labels = table.labels
    assert abs(fitted(labels).mean() - labels.mean()) > 0.05  # the two are told apart
    model = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", label_transform=transform, **SMALL)
    model.fit(table)
    assert model.predict(table).mean() == pytest.approx(fitted(labels).mean(), abs=0.02 * max(1.0, float(np.ptp(fitted(labels)))))
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m", expected_feature_schema="tc-feat-test")
    assert loaded.metadata.params["label_transform"] == transform
    np.testing.assert_allclose(loaded.predict(table), model.predict(table))
    with pytest.raises(ModelFormatError, match="label_transform"):
        LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, label_transform="log10")


def _lane_table(seed: int):
    """Programs whose speed is whether the last loop's innermost tile fills whole 8-lane (AVX2
    float32) registers: a modular fact the log2 tile column alone does not show."""
    import math

    from helpers import feature_table
    from tensorcost.features.cross import LANE_INPUTS

    names = list(LANE_INPUTS) + ["noise"]
    rng = np.random.default_rng(seed)
    n = 12 * 40
    x = np.zeros((n, len(names)), np.float32)
    tile = rng.integers(1, 257, n)
    x[:, names.index("hw_vector_bytes")] = math.log2(1 + 32)
    x[:, names.index("tiled_last0_log_extent")] = 10.0
    x[:, names.index("tiled_last0_log_in1")] = np.log2(tile)
    x[:, names.index("tiled_last0_log_in2")] = np.log2(2 * tile)
    x[:, -1] = rng.random(n)
    latency = np.where(tile % 8 == 0, 1.0, 3.0)
    return names, feature_table(x, np.repeat([f"g{seed}-{g}" for g in range(12)], 40), latency)


def test_lane_features_show_the_trees_whether_a_tile_fills_the_vector_registers(tmp_path):
    from tensorcost.features.cross import LANE_FEATURE_NAMES

    names, train = _lane_table(1)
    _, test = _lane_table(2)
    lat = test.frame["latency_s"].to_numpy()
    with_lanes = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", names, objective="regression", lane_features=True, **SMALL)
    with_lanes.fit(train)
    plain = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", names, objective="regression", **SMALL)
    plain.fit(train)
    assert pairwise_comparison_accuracy(test.groups, with_lanes.predict(test), lat) > 0.99
    assert pairwise_comparison_accuracy(test.groups, plain.predict(test), lat) < 0.8
    assert with_lanes.booster.num_feature() == len(names) + len(LANE_FEATURE_NAMES) == with_lanes.n_inputs
    with_lanes.save(tmp_path / "m")
    again = load_model(tmp_path / "m", expected_feature_schema="tc-feat-test")
    assert again.metadata.params["lane_features"] is True
    np.testing.assert_array_equal(again.predict(test), with_lanes.predict(test))
    # a model asked for lane features on a layout without the columns they come from says which
    bare = LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", lane_features=True, **SMALL)
    with pytest.raises(ValueError, match="hw_vector_bytes"):
        bare.fit(_table(4, 10, seed=3))


def test_joint_model_can_read_the_main_store_row_beside_the_pooled_ones(tmp_path):
    from tensorcost.features.metaschedule import MS_FEATURE_DIM
    from tensorcost.models.lightgbm_model import LightGBMJointCostModel, pooled_ms_features

    pad, accumulate = np.zeros((1, MS_FEATURE_DIM), np.float32), np.ones((1, MS_FEATURE_DIM), np.float32)
    pad[0, 0], accumulate[0, :7] = 0.5, [9, 1, 0, 0, 0, 0, 0]  # float work: the accumulation store has the most
    pooled = pooled_ms_features([np.concatenate([pad, accumulate]), np.zeros((0, MS_FEATURE_DIM), np.float32)], main_store=True)
    assert pooled.shape == (2, 3 * MS_FEATURE_DIM + 1)
    np.testing.assert_array_equal(pooled[0, 2 * MS_FEATURE_DIM + 1:], accumulate[0])
    assert pooled[0, 2 * MS_FEATURE_DIM] == 2 and not pooled[1].any()
    table = _table(6, 20, seed=1)
    table.ms_features = [np.random.default_rng(i).uniform(size=(3, MS_FEATURE_DIM)).astype(np.float32) for i in range(len(table))]
    model = LightGBMJointCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, objective="regression", ms_pooling="mean_max_main", **SMALL)
    model.fit(table)
    assert model.booster.num_feature() == N_FEATURES + 3 * MS_FEATURE_DIM + 1 == model.n_inputs
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m", expected_feature_schema="tc-feat-test")
    np.testing.assert_array_equal(again.predict(table), model.predict(table))
    with pytest.raises(ModelFormatError, match="ms_pooling"):
        LightGBMJointCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, ms_pooling="median")
    with pytest.raises(ModelFormatError, match="ms_pooling"):  # a plain LightGBM model has no MetaSchedule features to pool
        LightGBMCostModel.create("testcpu-1c.avx2-t1", "tc-feat-test", NAMES, ms_pooling="mean_max_main")
