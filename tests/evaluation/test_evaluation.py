"""The split-strategy study on a small synthetic problem (real LightGBM, no TVM)."""

import json

import numpy as np
import pandas as pd
import pytest

from tensorcost.evaluation import ModelSpec, run_study
from tensorcost.features import FeatureTable
from tensorcost.features import per_task_labels


def _frame(target, shift, n_tasks=6, per_task=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tasks):
        net = "resnet50-b1-112" if t < 2 else "resnet18-b1-112"
        for p in range(per_task):
            x = rng.random(4).astype(np.float32)
            lat = 1e-3 * (0.1 + x[0] + shift * x[1])
            rows.append({"record_id": f"{target}{t}{p}", "task_id": f"t{t}", "program_id": f"p{p}", "slot": target, "target": f"{target.lower()}-2c.avx2-t1",
                         "task_weight": 2 if t == 0 else 1, "networks": json.dumps({net: 1}), "latency_s": lat, "flat": x})
    df = pd.DataFrame(rows)
    df["label"] = per_task_labels(df["task_id"], df["latency_s"])
    df.attrs["feature_names"] = ["f0", "f1", "f2", "f3"]  # the table built from it carries them
    return df


def test_study_shapes_and_quality():
    ds = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B")}
    lgb = {"num_boost_round": 40, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0, "deterministic": True}
    specs = {"lightgbm_rank": ModelSpec("lightgbm", {**lgb, "objective": "lambdarank"}), "random": ModelSpec("random")}
    metrics, per_net, preds = run_study(ds, ["within_task", "by_task", "by_network", "by_hardware"], specs,
                                        {"test_fraction": 0.3, "seed": 0, "test_networks": ["resnet50"]})
    assert set(metrics) == {"A", "B"}
    assert set(metrics["A"]) == {"within_task", "by_task", "by_network", "by_hardware"}
    for split, by_model in metrics["A"].items():
        r = by_model["lightgbm_rank"]
        assert set(r) >= {"pca", "top1", "top5", "n_tasks", "n_records", "train_s", "candidates_per_s"}
        assert r["pca"] > by_model["random"]["pca"] + 0.2, split  # latency is a simple function of f0
        assert r["candidates_per_s"] > 0
    assert metrics["A"]["by_network"]["lightgbm_rank"]["n_tasks"] == 2  # the two resnet50 tasks
    assert metrics["A"]["by_hardware"]["lightgbm_rank"]["n_records"] == 180  # all of A, trained on B
    assert set(per_net["A"]["by_network"]) == {"resnet50"}
    assert set(per_net["A"]["within_task"]) == {"resnet50", "resnet18"}
    te, scores = preds["A"]["by_task"]
    assert len(scores["lightgbm_rank"]) == len(te)


def test_unknown_model_family_is_refused():
    ds = {"A": FeatureTable(_frame("A", 0.1), "A")}
    with pytest.raises(ValueError, match="unknown model family"):
        run_study(ds, ["within_task"], {"x": ModelSpec("nope")}, {"test_fraction": 0.3, "seed": 0})


def test_a_study_of_slots_it_does_not_have_is_refused():
    ds = {"A": FeatureTable(_frame("A", 0.1), "A")}
    with pytest.raises(ValueError, match="no dataset slot 'B'"):
        run_study(ds, ["within_task"], {"random": ModelSpec("random")}, {"test_fraction": 0.3, "seed": 0}, only=["B"])


def test_by_hardware_holds_out_the_whole_platform():
    from tensorcost.evaluation import other_platforms

    ds = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B")}
    ds["A2"] = FeatureTable(_frame("A", 0.2, seed=2).assign(slot="A2", target="a-2c.avx512-t2"), "A2")  # A's machine, another variant
    assert other_platforms(ds, "A") == ["B"] and other_platforms(ds, "A2") == ["B"]
    assert other_platforms(ds, "B") == ["A", "A2"]


def test_the_candidate_is_the_best_mean_of_the_chosen_metrics():
    from tensorcost.evaluation import pick_candidate

    m = {"a": {"pca": 0.80, "top1": 0.30, "top5": 0.80}, "b": {"pca": 0.75, "top1": 0.60, "top5": 0.85}}
    assert pick_candidate(m, ["pca"]) == "a"
    assert pick_candidate(m, ["pca", "top1", "top5"]) == "b"  # a PCA lead does not hide a poor top-1
    # a model that picks worse than random is not served while another does not
    floor = {"pca": 0.5, "top1": 0.45, "top5": 0.82}
    m["c"] = {"pca": 0.95, "top1": 0.40, "top5": 0.99}
    assert pick_candidate(m, ["pca", "top1", "top5"]) == "c"
    assert pick_candidate(m, ["pca", "top1", "top5"], floor) == "b"
    assert pick_candidate({"c": m["c"]}, ["pca"], floor) == "c"  # nothing clears it: the best is still served


def test_a_model_other_than_the_trees_is_served_only_near_the_best_tree():
    """Issue 27 item 3: the attention model (any model not a tree model) is served only with a
    top-1 at least random's and a PCA within 0.02 of the best tree model's on the same test side."""
    from tensorcost.evaluation import ModelSpec, pick_candidate, serving_problems, tree_model_keys

    floor = {"pca": 0.5, "top1": 0.30, "top5": 0.70}
    m = {"lgb": {"pca": 0.80, "top1": 0.50, "top5": 0.90}, "xgb": {"pca": 0.70, "top1": 0.40, "top5": 0.90},
         "attention": {"pca": 0.775, "top1": 0.90, "top5": 0.99}}
    trees = tree_model_keys({"lgb": ModelSpec("lightgbm"), "xgb": ModelSpec("tvm_xgb"), "attention": ModelSpec("attention")})
    assert trees == ["lgb", "xgb"]
    why = serving_problems(m, trees, floor)
    assert why["lgb"] == why["xgb"] == "" and "0.775" in why["attention"] and "0.800" in why["attention"]
    assert pick_candidate(m, ["pca", "top1", "top5"], floor, trees) == "lgb"  # its best mean does not serve it
    m["attention"]["pca"] = 0.785  # within 0.02: served on its mean
    assert pick_candidate(m, ["pca", "top1", "top5"], floor, trees) == "attention"
    m["attention"]["top1"] = 0.29  # below random's top-1: not served, whatever its PCA
    assert "top1" in serving_problems(m, trees, floor)["attention"]
    assert pick_candidate(m, ["pca", "top5"], floor, trees) == "lgb"
    # a tree model is never held to another tree's PCA: only to random's floor
    assert serving_problems({"a": {"pca": 0.9, "top1": 1, "top5": 1}, "b": {"pca": 0.6, "top1": 1, "top5": 1}}, ["a", "b"], floor)["b"] == ""


def test_random_expectation_is_what_random_rankings_score_on_average():
    from tensorcost.metrics import random_expectation, ranking_report

    rng = np.random.default_rng(0)
    tasks = np.repeat(["a", "b", "c"], [3, 9, 40])
    lat = rng.random(len(tasks)) + 0.01
    w = {"a": 1.0, "b": 2.0, "c": 1.0}
    exp = random_expectation(tasks, lat, w)
    # the figures are ratios of sums: their expectation is the ratio of expected sums, which many draws approach
    draws = [ranking_report(tasks, rng.random(len(tasks)), lat, w) for _ in range(4000)]
    num = sum(w[t] * lat[tasks == t].min() for t in w)
    for k, attr in ((1, "top1"), (5, "top5")):
        mean_den = np.mean([num / getattr(r, attr) for r in draws])
        assert exp[attr] == pytest.approx(num / mean_den, rel=0.01)
    assert exp["top5"] > exp["top1"] and exp["pca"] == 0.5


def test_an_ensemble_blends_the_members_trained_before_it_instead_of_training_them_again():
    from tensorcost.evaluation import reuse_trained, train_models, train_test

    table = FeatureTable(_frame("A", 0.1, n_tasks=8), "A")
    train, test = train_test(table, "by_task", {"test_fraction": 0.25, "seed": 0})
    lgb = {"num_boost_round": 40, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0}
    members = [{"name": "reg", "family": "lightgbm", "params": {**lgb, "objective": "regression"}},
               {"name": "rank", "family": "lightgbm", "params": {**lgb, "objective": "lambdarank"}}]
    specs = {"reg": ModelSpec("lightgbm", members[0]["params"]), "rank": ModelSpec("lightgbm", members[1]["params"]),
             "ens": ModelSpec("ensemble", {"members": members})}
    results = train_models(specs, train, test)
    ens = results["ens"].model
    assert ens.members[0] is results["reg"].model and ens.members[1] is results["rank"].model
    assert results["ens"].train_s >= results["reg"].train_s + results["rank"].train_s
    assert results["ens"].metrics["pca"] > 0.8
    # trained alone it is the same model (the members are deterministic): reuse changes cost, not result
    alone = train_models({"ens": specs["ens"]}, train, test)["ens"]
    np.testing.assert_allclose(alone.model.predict(test), ens.predict(test), rtol=1e-9)
    # a member trained under other params is not reused
    other = {"reg": (results["reg"].model, 0.0), "rank": (train_models({"rank": ModelSpec("lightgbm", {**members[1]["params"], "num_leaves": 7})}, train, test)["rank"].model, 0.0)}
    assert reuse_trained(specs["ens"], other, train) is None
    # the study reuses them the same way
    metrics, _, _ = run_study({"A": table}, ["by_task"], specs, {"test_fraction": 0.25, "seed": 0})
    assert metrics["A"]["by_task"]["ens"]["pca"] == pytest.approx(results["ens"].metrics["pca"])


def test_the_study_over_store_views_equals_the_study_in_memory(tmp_path):
    """The evaluate stage reads each slot as a store view (metadata whole, numbers a fragment at a
    time, by_hardware's training side the other slots' views pooled): same figures as in memory."""
    from tensorcost.features import write_feature_store
    from tensorcost.features.store import StoreView

    tables = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B")}
    tables = {k: t.with_frame(t.frame.assign(n_tokens=0)) for k, t in tables.items()}
    for slot, t in tables.items():
        write_feature_store(t, tmp_path, slot, rows_per_fragment=50)  # several fragments
    views = {slot: StoreView(tmp_path, slot) for slot in tables}
    assert len(views["A"].paths) > 1
    lgb = {"num_boost_round": 30, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0, "deterministic": True}
    specs = {"lightgbm_reg": ModelSpec("lightgbm", {**lgb, "objective": "regression"}), "random": ModelSpec("random")}
    args = (["within_task", "by_task", "by_hardware"], specs, {"test_fraction": 0.3, "seed": 0})
    want, want_net, _ = run_study(tables, *args)
    got, got_net, _ = run_study(views, *args)
    assert {s: set(by_split) for s, by_split in want.items()} == {s: {"within_task", "by_task", "by_hardware"} for s in tables}  # nothing skipped
    for slot in want:
        for split in want[slot]:
            for model in want[slot][split]:
                for k in ("pca", "top1", "top5", "n_tasks", "n_records"):
                    assert got[slot][split][model][k] == pytest.approx(want[slot][split][model][k], abs=1e-9), (slot, split, model, k)
    assert got_net == want_net


def test_joint_training_side_pools_every_platform_and_never_a_tested_program(tmp_path):
    """`pool_platforms`: a split's training side of every slot of the kind; a program (or task)
    on the evaluated slot's test side is on no slot's training side, in memory and over views."""
    from tensorcost.evaluation import joint_training_side, split_mask
    from tensorcost.features import write_feature_store
    from tensorcost.features.store import StoreView

    tables = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B")}
    tables = {k: t.with_frame(t.frame.assign(n_tokens=0)) for k, t in tables.items()}
    params = {"test_fraction": 0.3, "seed": 0, "test_networks": ["resnet50"]}
    for strategy in ("within_task", "by_task", "by_network"):
        test = tables["A"].frame[split_mask(strategy, tables["A"], params)]
        joint = joint_training_side(tables, "A", strategy, params)
        own = int((~split_mask(strategy, tables["A"], params)).sum())
        assert len(joint) == own + int((~split_mask(strategy, tables["B"], params)).sum()) > own
        assert set(joint.frame["slot"]) == {"A", "B"}
        seen = set(zip(joint.frame["task_id"], joint.frame["program_id"]))
        assert not seen & set(zip(test["task_id"], test["program_id"])), strategy
        if strategy != "within_task":
            assert not set(joint.frame["task_id"]) & set(test["task_id"]), strategy
    with pytest.raises(ValueError, match="by_hardware"):
        joint_training_side(tables, "A", "by_hardware", params)

    # the study with it: more training rows, the same test side, over views as in memory
    for slot, t in tables.items():
        write_feature_store(t, tmp_path, slot, rows_per_fragment=50)
    views = {slot: StoreView(tmp_path, slot) for slot in tables}
    lgb = {"num_boost_round": 30, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0, "deterministic": True}
    specs = {"lightgbm_reg": ModelSpec("lightgbm", {**lgb, "objective": "regression"})}
    alone, _, _ = run_study(tables, ["by_task"], specs, params)
    pooled, _, _ = run_study(tables, ["by_task"], specs, params, pool_platforms=True)
    over_views, _, _ = run_study(views, ["by_task"], specs, params, pool_platforms=True)
    for slot in tables:
        a, p, v = (m[slot]["by_task"]["lightgbm_reg"] for m in (alone, pooled, over_views))
        assert p["n_records"] == a["n_records"]  # the test side is the slot's own
        assert p["pca"] != a["pca"]  # another training side, another model
        assert v["pca"] == pytest.approx(p["pca"], abs=1e-9)


def test_by_hardware_with_a_program_split_trains_on_no_tested_program_of_any_platform(tmp_path):
    """`by_hardware+<split>`: the held-out slot's test side of the split, trained on the other
    platforms' training sides of it; plain by_hardware tests every row of the slot and trains on
    every row of the others (its test programs among them, measured on other machines)."""
    from tensorcost.evaluation import hardware_sides, split_mask
    from tensorcost.features import write_feature_store
    from tensorcost.features.store import StoreView

    tables = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B"),
              "C": FeatureTable(_frame("C", 0.2, seed=2), "C")}
    tables = {k: t.with_frame(t.frame.assign(n_tokens=0)) for k, t in tables.items()}
    params = {"test_fraction": 0.3, "seed": 0, "test_networks": ["resnet50"]}
    train, test = hardware_sides(tables, "A", None, params)
    assert len(test) == len(tables["A"]) and set(train.frame["slot"]) == {"B", "C"}
    for split in ("within_task", "by_task", "by_network"):
        train, test = hardware_sides(tables, "A", split, params)
        assert set(test.frame["slot"]) == {"A"} and set(train.frame["slot"]) == {"B", "C"}
        assert len(test) == int(split_mask(split, tables["A"], params).sum()) < len(tables["A"])
        tested = set(zip(test.frame["task_id"], test.frame["program_id"]))
        assert not tested & set(zip(train.frame["task_id"], train.frame["program_id"])), split
        assert len(train) == sum(int((~split_mask(split, tables[s], params)).sum()) for s in ("B", "C"))
    assert hardware_sides({"A": tables["A"]}, "A", "within_task", params) is None  # no other platform

    for slot, t in tables.items():
        write_feature_store(t, tmp_path, slot, rows_per_fragment=50)
    views = {slot: StoreView(tmp_path, slot) for slot in tables}
    lgb = {"num_boost_round": 30, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0, "deterministic": True}
    specs = {"lightgbm_reg": ModelSpec("lightgbm", {**lgb, "objective": "regression"})}
    splits = ["within_task", "by_hardware", "by_hardware+within_task"]
    in_memory, _, _ = run_study(tables, splits, specs, params, only=["A"])
    over_views, _, _ = run_study(views, splits, specs, params, only=["A"])
    m = in_memory["A"]
    assert m["by_hardware+within_task"]["lightgbm_reg"]["n_records"] == m["within_task"]["lightgbm_reg"]["n_records"]  # the same test rows
    assert m["by_hardware"]["lightgbm_reg"]["n_records"] == len(tables["A"])
    assert m["by_hardware+within_task"]["lightgbm_reg"]["pca"] != m["within_task"]["lightgbm_reg"]["pca"]  # trained elsewhere
    assert over_views["A"]["by_hardware+within_task"]["lightgbm_reg"]["pca"] == pytest.approx(m["by_hardware+within_task"]["lightgbm_reg"]["pca"], abs=1e-9)


def test_a_study_with_an_unknown_split_fails_before_training_anything():
    ds = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B")}
    trained = []

    class Spy(ModelSpec):
        def create(self, table, target=None):
            trained.append(table)
            return super().create(table, target)

    with pytest.raises(ValueError, match="unknown split strategy 'by_hardwar'"):
        run_study(ds, ["within_task", "by_hardwar"], {"random": Spy("random")}, {"test_fraction": 0.3, "seed": 0})
    assert trained == []


def test_study_figures_weigh_each_task_by_its_occurrences_over_the_networks():
    """One scoring for the study, the stages and every benchmark: top-k weigh a task by how often
    the networks hold it (t0 has task_weight 2); PCA counts pairs. Scores that rank t0 perfectly
    and t1 backwards: PCA 1/2 (equal pairs), top-1 the weighted ratio, not the unweighted one."""
    from tensorcost.evaluation import study_figures

    df = _frame("A", 0.1, n_tasks=2)
    test = FeatureTable(df, "A")
    lat = df["latency_s"].to_numpy()
    t0 = (df["task_id"] == "t0").to_numpy()
    scores = np.where(t0, -lat, lat)  # higher score = predicted faster: t0 right, t1 backwards
    r = study_figures(test, scores)
    best0, best1, worst1 = lat[t0].min(), lat[~t0].min(), lat[~t0].max()
    weighted, unweighted = (2 * best0 + best1) / (2 * best0 + worst1), (best0 + best1) / (best0 + worst1)
    assert r["pca"] == pytest.approx(0.5)
    assert r["top1"] == pytest.approx(weighted) and abs(weighted - unweighted) > 0.01
    assert r["n_tasks"] == 2 and r["n_records"] == len(df)
