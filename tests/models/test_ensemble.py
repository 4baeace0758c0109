"""The ensemble family: members on one scale, scores comparable across calls, a member-wise
artifact that loads verified, presets resolved from params.yaml."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers import feature_table, synthetic_ranking_data
from tensorcost.metrics import pairwise_comparison_accuracy
from tensorcost.models import ModelFormatError, create_model, load_model
from tensorcost.models.base import seal_metadata
from tensorcost.models.ensemble import EnsembleCostModel, within_task_spread

NAMES = [f"f{i}" for i in range(4)]
LGB = {"num_boost_round": 30, "num_threads": 1, "min_data_in_leaf": 5, "seed": 0}
MEMBERS = [{"name": "reg", "family": "lightgbm", "params": {**LGB, "objective": "regression"}},
           {"name": "rank", "family": "lightgbm", "params": {**LGB, "objective": "lambdarank"}, "weight": 2.0}]


def _table(seed: int, n_tasks: int = 8):
    x, _, latency, groups = synthetic_ranking_data(seed=seed, n_tasks=n_tasks)
    return feature_table(x, [f"s{seed}-{g}" for g in groups], latency)


@pytest.fixture(scope="module")
def trained():
    model = create_model("ensemble", "t", "tc-feat-test", NAMES, members=MEMBERS)
    model.fit(_table(0))
    return model


def test_members_are_put_on_one_scale_by_their_within_task_spread(trained):
    train, test = _table(0), _table(1)
    spreads = trained.metadata.extra["spreads"]
    # the spread is each member's own, measured on the training rows (lambdarank's scores are on
    # another scale than the regression's throughput, so unscaled the bigger one would decide)
    assert spreads == pytest.approx([within_task_spread(m.predict(train), train.groups) for m in trained.members])
    assert spreads[0] != pytest.approx(spreads[1], rel=0.05)
    expected = trained.members[0].predict(test) / spreads[0] + 2.0 * trained.members[1].predict(test) / spreads[1]
    np.testing.assert_allclose(trained.predict(test), expected, rtol=1e-12)
    assert pairwise_comparison_accuracy(test.frame["task_id"], trained.predict(test), test.frame["latency_s"]) > 0.8


def test_scores_do_not_depend_on_what_else_is_in_the_call(trained):
    # MetaSchedule keeps the best candidates of many predict calls in one heap: a candidate's score
    # must be the same whichever batch it came in
    test = _table(2)
    whole = trained.predict(test)
    part = np.arange(0, len(test), 7)
    np.testing.assert_array_equal(trained.predict(test.take(part)), whole[part])


def test_within_task_spread_is_the_pooled_deviation_from_each_group_mean():
    assert within_task_spread(np.array([1.0, 3.0, 10.0, 14.0]), np.array(["a", "a", "b", "b"])) == pytest.approx(np.sqrt((1 + 1 + 4 + 4) / 4))
    assert within_task_spread(np.array([5.0, 5.0, 2.0]), np.array(["a", "a", "b"])) == 1.0  # constant per task: no scale to take


def test_from_members_blends_already_trained_models_like_a_fit(trained):
    train, test = _table(0), _table(1)
    members = []
    for spec in MEMBERS:
        m = create_model(spec["family"], "t", "tc-feat-test", NAMES, **spec["params"])
        m.fit(train)
        members.append(m)
    blended = EnsembleCostModel.from_members(members, ["reg", "rank"], train, weights=[1.0, 2.0])
    np.testing.assert_allclose(blended.predict(test), trained.predict(test), rtol=1e-9)
    assert blended.describe()["members"][1]["name"] == "rank"


def test_save_load_round_trip_and_member_damage_is_refused(trained, tmp_path):
    test = _table(3)
    trained.save(tmp_path / "ens")
    again = load_model(tmp_path / "ens", "tc-feat-test")
    assert isinstance(again, EnsembleCostModel)
    np.testing.assert_array_equal(again.predict(test), trained.predict(test))
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == ["member-0", "member-1", "metadata.json"]

    bad = tmp_path / "flipped"
    shutil.copytree(tmp_path / "ens", bad)
    weights = bad / "member-1" / "model.txt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="member-1.*sha256"):
        load_model(bad)

    for i, (edit, expect) in enumerate(((lambda m: m["extra"].update(spreads=[1.0]), "one positive finite spread per member"),
                         (lambda m: m["extra"].update(spreads=[1.0, -2.0]), "one positive finite spread per member"),
                         (lambda m: m["params"]["members"][0].update(family="random", params={}), "a lightgbm model where the ensemble's metadata says random"))):
        d = tmp_path / f"edited-{i}"
        shutil.copytree(tmp_path / "ens", d)
        meta = json.loads((d / "metadata.json").read_text())
        edit(meta)
        (d / "metadata.json").write_text(json.dumps(meta))
        seal_metadata(d)
        with pytest.raises(ModelFormatError, match=expect):
            load_model(d)


def test_bad_member_lists_are_one_line():
    with pytest.raises(ModelFormatError, match="members"):
        create_model("ensemble", "t", "s", NAMES, members=MEMBERS[:1])
    with pytest.raises(ModelFormatError, match="'tvm_xgb' reads"):
        create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], {"family": "tvm_xgb"}])
    with pytest.raises(ModelFormatError, match="members"):  # a nested blend needs its own members
        create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], {"family": "ensemble"}])
    inner = {"family": "ensemble", "params": {"members": [MEMBERS[0], MEMBERS[0]]}}
    create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], inner])  # one level: a blend of platforms' models, some blends
    with pytest.raises(ModelFormatError, match="nests one level at most"):
        create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], {"family": "ensemble", "params": {"members": [MEMBERS[0], inner]}}])
    with pytest.raises(ModelFormatError, match="'gbdt' is not one of"):
        create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], {"family": "gbdt"}])
    with pytest.raises(ModelFormatError, match="num_leaves"):
        create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], {"family": "lightgbm", "params": {"num_leaves": 1}}])


def _with_ms_features(table, seed: int):
    """`table` with MetaSchedule-like per-store matrices whose first column carries the ranking
    (random elsewhere): a joint member can read them, a flat-only member cannot."""
    from tensorcost.features.metaschedule import MS_FEATURE_DIM

    rng = np.random.default_rng(seed)
    lat = table.frame["latency_s"].to_numpy()
    mats = []
    for x in -np.log(lat):
        m = rng.normal(size=(int(rng.integers(1, 4)), MS_FEATURE_DIM)).astype(np.float32)
        m[:, 0] = x
        mats.append(m)
    table.ms_features = mats
    return table


def test_a_blend_with_a_member_reading_metaschedule_features_reads_them_too(tmp_path):
    """A blend of `lightgbm_reg` and `lightgbm_joint` (docs/RESULTS.md, thirtieth session): the blend
    reads what its members read (known from the params before it exists, as the stages ask), scores
    as its members' scaled sum, round-trips, and refuses rows without the features in one line."""
    from tensorcost.errors import UserError
    from tensorcost.evaluation import ModelSpec

    joint = {"name": "joint", "family": "lightgbm_joint", "params": {**LGB, "objective": "regression"}}
    members = [MEMBERS[0], joint]
    spec = ModelSpec("ensemble", {"members": members})
    assert spec.inputs == ("flat", "ms_features")
    assert ModelSpec("ensemble", {"members": MEMBERS}).inputs == ("flat",)
    train, test = _with_ms_features(_table(0), 0), _with_ms_features(_table(1), 1)
    model = create_model("ensemble", "t", "tc-feat-test", NAMES, members=members)
    assert model.inputs == ("flat", "ms_features") and model.streams_ms_features
    model.fit(train)
    spreads = model.metadata.extra["spreads"]
    expected = model.members[0].predict(test) / spreads[0] + model.members[1].predict(test) / spreads[1]
    np.testing.assert_allclose(model.predict(test), expected, rtol=1e-12)
    # the blend's scores move with the MetaSchedule features (the flat-only member never sees them)
    shuffled = _with_ms_features(_table(1), 1)
    shuffled.ms_features = shuffled.ms_features[::-1]
    assert np.abs(model.predict(shuffled) - model.predict(test)).max() > 1e-6
    np.testing.assert_array_equal(model.members[0].predict(shuffled), model.members[0].predict(test))
    model.save(tmp_path / "ens")
    again = load_model(tmp_path / "ens", "tc-feat-test")
    assert again.inputs == ("flat", "ms_features")
    np.testing.assert_array_equal(again.predict(test), model.predict(test))
    with pytest.raises((UserError, ValueError), match="[Mm]eta[Ss]chedule|ms_features"):
        again.predict(_table(2))
    with pytest.raises(ModelFormatError, match="'tvm_xgb' reads MetaSchedule's features whole"):
        create_model("ensemble", "t", "s", NAMES, members=[MEMBERS[0], {"family": "tvm_xgb"}])


def test_warm_start_fine_tunes_the_members_and_recalibrates(trained):
    import copy

    model = copy.deepcopy(trained)
    before = [m.booster.num_trees() for m in model.members]
    model.fit(_table(4, n_tasks=3), warm_start=True, seed=0)
    assert all(m.booster.num_trees() > b for m, b in zip(model.members, before))
    assert model.metadata.extra["spreads"] != trained.metadata.extra["spreads"]


def test_an_ensemble_goes_through_the_registry_and_loads_verified_by_alias(trained, tmp_path, mlflow_store):
    # its members are nested directories of the artifact: registered, downloaded, hash-checked
    from tensorcost import registry

    test = _table(5)
    made_for = trained.metadata.target
    trained.metadata.target = "zen5-2c.avx2-t1"  # a model registers under its own target's name only
    try:
        trained.save(tmp_path / "ens")
    finally:
        trained.metadata.target = made_for
    version = registry.log_and_register(tmp_path / "ens", "zen5-2c.avx2-t1", experiment="test", run_name="ens", params={},
                                        metrics={"pca": 0.9}, tags={"model_family": "ensemble", "feature_schema": "tc-feat-test"}, alias=registry.CANDIDATE)
    model, resolved = registry.load_by_alias("zen5-2c.avx2-t1", registry.CANDIDATE, fallback=None)
    assert resolved.version == version and isinstance(model, EnsembleCostModel)
    np.testing.assert_array_equal(model.predict(test), trained.predict(test))
