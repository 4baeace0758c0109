"""The transfer study on real featurized records: its splits, and every approach on the same
test side (real LightGBM and attention models; no TVM)."""

from __future__ import annotations

import numpy as np

from tensorcost import dataset
from tensorcost.evaluation import ModelSpec, train_test
from tensorcost.features import FeatureTable, featurize_table
from tensorcost.hardware import HARDWARE_FEATURE_NAMES, catalog_target
from tensorcost.transfer import target_split, transfer_study


def _slot(target: str, tasks: int = 6) -> tuple[FeatureTable, list[str]]:
    """A bundled target's records (the first `tasks` tasks), featurized as the pipeline does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = dataset.bundled_tables([target])[target]
    keep = sorted(set(table.column("task_id").to_pylist()))[:tasks]
    table = table.filter(pc.is_in(table["task_id"], value_set=pa.array(keep)))
    frame = featurize_table(table, catalog_target(target).features(), HARDWARE_FEATURE_NAMES, slot=target)
    return FeatureTable(frame, target), frame.attrs["feature_names"]


def test_target_split_is_disjoint_and_nested():
    data, _ = _slot("zen5-2c.avx2-t1", tasks=3)
    test, order = target_split(data, 0.5, 0)
    assert set(order).isdisjoint(np.flatnonzero(test)) and len(order) + test.sum() == len(data)
    again_test, again_order = target_split(data, 0.5, 0)
    assert (again_test == test).all() and (again_order == order).all()  # deterministic
    # the pool order is every non-test row once, shuffled (not the file's first rows, TenSet's
    # within-task trap): its first 10% already reaches most tasks
    assert sorted(order.tolist()) == np.flatnonzero(~test).tolist()
    assert not (np.diff(order) > 0).all()
    tasks = data.frame["task_id"].to_numpy()
    assert len(set(tasks[order[: max(1, len(order) // 10)]])) == len(set(tasks))


def test_every_approach_scored_on_the_same_test_side():
    source_data, names = _slot("sapphirerapids-2c.avx2-t1")
    target_data, _ = _slot("zen5-2c.avx2-t1")
    lgb = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 30, "num_threads": 1, "finetune_rounds": 10})
    train, _ = train_test(source_data, "within_task", {"test_fraction": 0.2, "seed": 0})
    source = lgb.create(train)
    source.fit(train)
    peers = {"lightgbm_reg": lgb, "random": ModelSpec("random")}
    study = transfer_study({"spr": source}, target_data, [10, 100], peers, test_fraction=0.5, seed=0, keep_finetuned_at=10)
    curves, kept = study.curves, study.finetuned
    assert set(curves) == {"zero_shot:spr", "finetune:spr", "lightgbm_reg", "random"}
    assert set(curves["zero_shot:spr"]) == {"0"} and set(curves["finetune:spr"]) == {"10", "100"}
    n_test = int(target_split(target_data, 0.5, 0)[0].sum())
    assert curves["lightgbm_reg"]["100"]["n_train"] == len(target_data) - n_test
    assert kept["spr"].booster.num_trees() == source.booster.num_trees() + 10  # fine-tuned, a copy
    # the same programs on another machine rank alike: the source beats random zero-shot
    assert curves["zero_shot:spr"]["0"]["pca"] > curves["random"]["100"]["pca"] + 0.1
    for by_k in curves.values():
        for r in by_k.values():
            assert 0 <= r["pca"] <= 1 and 0 < r["top5"] <= 1


def test_tvm_xgb_peer_is_skipped_without_metaschedule_features():
    data, names = _slot("zen5-2c.avx2-t1", tasks=2)
    source = ModelSpec("random").create(data, target="x")
    curves = transfer_study({"r": source}, data, [50], {"tvm_xgb": ModelSpec("tvm_xgb")}, test_fraction=0.5, seed=0).curves
    assert "tvm_xgb" not in curves and set(curves) == {"zero_shot:r", "finetune:r"}


def _stats(n_tasks: int, pca: float, seed: int) -> np.ndarray:
    """task_stats rows of a model whose PCA is about `pca` on every task (top-k all perfect)."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(50, 200, n_tasks).astype(float)
    good = np.clip(pairs * (pca + rng.normal(0, 0.05, n_tasks)), 0, pairs)
    return np.stack([good, pairs, np.ones(n_tasks), np.ones(n_tasks), np.ones(n_tasks)], axis=1)


def test_the_default_stays_unless_the_test_side_can_tell_the_best_apart():
    from tensorcost.transfer import Candidate, choose

    keys = ("pca", "top1", "top5")
    from tensorcost.models import create_model

    default_model, best_model = create_model("random", "x", "s", ["f"]), create_model("random", "y", "s", ["f"])
    for n_tasks, gap, expect in ((4, 0.02, "pooled:lightgbm_reg"), (60, 0.10, "finetune:spr")):
        fixed = {"zero_shot:spr": Candidate("zero_shot:spr", "0", 0, _stats(n_tasks, 0.6, 1)),
                 "pooled:lightgbm_reg": Candidate("pooled:lightgbm_reg", "0", 0, _stats(n_tasks, 0.7, 2), default_model)}
        best = Candidate("finetune:spr", "25", 40, _stats(n_tasks, 0.7 + gap, 3), best_model)
        choice, model = choose(best, fixed, keys, 0.95, 0)
        assert choice["approach"] == expect, choice
        assert choice["default"] == "pooled:lightgbm_reg" and len(choice["difference_ci"]) == 2
        assert model is (default_model if expect.startswith("pooled") else best_model)
        lo, hi = choice["difference_ci"]
        assert (lo > 0) == (expect == "finetune:spr") and lo < hi
    # the best is the default itself: served without a bootstrap
    fixed = {"pooled:lightgbm_reg": Candidate("pooled:lightgbm_reg", "0", 0, _stats(5, 0.8, 2), default_model)}
    choice, model = choose(fixed["pooled:lightgbm_reg"], fixed, keys, 0.95, 0)
    assert choice["approach"] == "pooled:lightgbm_reg" and model is default_model


def test_a_pooled_model_and_the_blend_of_sources_compete_and_the_choice_names_its_reason():
    spr, names = _slot("sapphirerapids-2c.avx2-t1")
    zen4, _ = _slot("zen4-2c.avx2-t1")
    target_data, _ = _slot("zen5-2c.avx2-t1")
    lgb = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 30, "num_threads": 1, "finetune_rounds": 10})
    sources = {}
    for name, d in (("spr", spr), ("zen4", zen4)):
        sources[name] = lgb.create(d)
        sources[name].fit(d)
    both = FeatureTable.concat([spr, zen4], "pooled")
    pooled = lgb.create(both, target="pooled")
    pooled.fit(both)
    study = transfer_study(sources, target_data, [25], {"random": ModelSpec("random")}, test_fraction=0.5, seed=0, pooled={"lightgbm_reg": pooled})
    assert {"zero_shot:spr", "zero_shot:zen4", "zero_shot:blend", "pooled:lightgbm_reg", "finetune:spr", "random"} <= set(study.curves)
    c = study.choice
    assert c["default"] == "pooled:lightgbm_reg" and c["approach"] in study.curves and c["reason"]
    servable = [(a, k) for a in study.curves for k in study.curves[a] if f"{a}@{k}" not in c["not_served"]]
    best = max(servable, key=lambda ak: np.mean([study.curves[ak[0]][ak[1]][m] for m in ("pca", "top1", "top5")]))
    assert (c["best"]["approach"], c["best"]["k"]) == best
    assert c["approach"] != "random" and study.model is not None
    # the served model is the one the figures are of: it scores the test side as the choice says
    test_mask, _ = target_split(target_data, 0.5, 0)
    from tensorcost.evaluation import score

    got = score(study.model, target_data.take(np.flatnonzero(test_mask)))
    assert abs(got["pca"] - c["pca"]) < 1e-9 and abs(got["top5"] - c["top5"]) < 1e-9


def test_the_study_over_a_store_view_equals_the_study_in_memory(tmp_path):
    """The transfer stage reads the target as a store view: fine-tuning (LightGBM warm starts
    included) and every peer give the figures of the in-memory table."""
    from tensorcost.features import write_feature_store
    from tensorcost.features.store import StoreView

    source_data, names = _slot("sapphirerapids-2c.avx2-t1")
    target, _ = _slot("zen5-2c.avx2-t1")
    write_feature_store(target, tmp_path, "zen5-2c.avx2-t1", rows_per_fragment=200)
    view = StoreView(tmp_path, "zen5-2c.avx2-t1")
    lgb = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1, "finetune_rounds": 5})
    source = lgb.create(source_data)
    source.fit(source_data)
    args = dict(test_fraction=0.5, seed=0)
    want = transfer_study({"spr": source}, view.materialize(), [25], {"lightgbm_reg": lgb}, **args)
    got = transfer_study({"spr": source}, view, [25], {"lightgbm_reg": lgb}, **args)
    assert got.curves == want.curves and got.choice["approach"] == want.choice["approach"]


def test_the_best_servable_approach_skips_a_non_tree_model_far_below_the_trees():
    from tensorcost.transfer import Candidate, best_servable

    def cand(name, pca, top1, tree):  # one task: good pairs of 100, best latency 1 over the picked one's
        return Candidate(name, "0", 0, np.array([[100 * pca, 100, 1.0, 1.0 / top1, 1.0]]), None, tree)

    floor = {"pca": 0.5, "top1": 0.3, "top5": 0.7}
    cands = [cand("pooled:lightgbm_reg", 0.80, 0.60, True), cand("attention", 0.75, 1.0, False), cand("zero_shot:blend", 0.79, 0.9, False)]
    best, why = best_servable(cands, ["pca", "top1", "top5"], floor)
    assert best.approach == "zero_shot:blend" and why["attention@0"] and not why["zero_shot:blend@0"]
    best, _ = best_servable(cands[:2], ["pca", "top1", "top5"], floor)
    assert best.approach == "pooled:lightgbm_reg"  # the attention model's higher mean does not serve it


def test_the_card_names_the_registry_versions_the_chosen_model_came_from():
    from tensorcost.transfer import chosen_sources

    pulled = {"zen5-2c.avx2-t1": {"name": "tensorcost-zen5-2c.avx2-t1", "version": "3"}, "zen4-2c.avx2-t1": {"name": "tensorcost-zen4-2c.avx2-t1", "version": "1"}}
    assert chosen_sources("finetune:zen4-2c.avx2-t1", pulled) == "tensorcost-zen4-2c.avx2-t1/1"
    assert chosen_sources("zero_shot:zen5-2c.avx2-t1", pulled) == "tensorcost-zen5-2c.avx2-t1/3"
    assert chosen_sources("zero_shot:blend", pulled) == "tensorcost-zen5-2c.avx2-t1/3,tensorcost-zen4-2c.avx2-t1/1"
    assert chosen_sources("pooled:lightgbm_reg", pulled) == chosen_sources("lightgbm_reg", pulled) == ""


def test_sources_reading_metaschedule_features_are_blended_too():
    """A source whose candidate reads MetaSchedule's features (lightgbm_joint, ensemble_trees) still
    joins the zero-shot blend, which then reads them; one reading them whole (TVM's XGBoost) does not."""
    from helpers import feature_table, synthetic_ranking_data
    from tensorcost.features.metaschedule import MS_FEATURE_DIM
    from tensorcost.models import create_model
    from tensorcost.transfer import blend_sources

    x, _, latency, groups = synthetic_ranking_data(seed=0, n_tasks=6)
    data = feature_table(x, [f"t{g}" for g in groups], latency)
    rng = np.random.default_rng(0)
    data.ms_features = [rng.normal(size=(2, MS_FEATURE_DIM)).astype(np.float32) for _ in range(len(data))]
    names = [f"f{i}" for i in range(x.shape[1])]
    params = {"objective": "regression", "num_boost_round": 20, "num_threads": 1, "min_data_in_leaf": 5}
    flat, joint = create_model("lightgbm", "a", "s", names, **params), create_model("lightgbm_joint", "b", "s", names, **params)
    flat.fit(data)
    joint.fit(data)
    blend = blend_sources({"a": flat, "b": joint}, data)
    assert blend is not None and "ms_features" in blend.inputs
    assert np.isfinite(blend.predict(data)).all()
    assert blend_sources({"a": flat, "x": create_model("tvm_xgb", "c", "s", names)}, data) is None
