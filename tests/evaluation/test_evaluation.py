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
    return df


def test_study_shapes_and_quality():
    ds = {"A": FeatureTable(_frame("A", 0.1), "A"), "B": FeatureTable(_frame("B", 0.3, seed=1), "B")}
    lgb = {"num_boost_round": 40, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0, "deterministic": True}
    specs = {"lightgbm_rank": ModelSpec("lightgbm", {**lgb, "objective": "lambdarank"}), "random": ModelSpec("random")}
    metrics, per_net, preds = run_study(ds, ["within_task", "by_task", "by_network", "by_hardware"], specs,
                                        {"test_fraction": 0.3, "seed": 0, "test_networks": ["resnet50"]}, "s", ["f0", "f1", "f2", "f3"])
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
        run_study(ds, ["within_task"], {"x": ModelSpec("nope")}, {"test_fraction": 0.3, "seed": 0}, "s", ["f0", "f1", "f2", "f3"])


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


def test_an_ensemble_blends_the_members_trained_before_it_instead_of_training_them_again():
    from tensorcost.evaluation import blend_of_trained, train_models, train_test

    table = FeatureTable(_frame("A", 0.1, n_tasks=8), "A")
    train, test = train_test(table, "by_task", {"test_fraction": 0.25, "seed": 0})
    lgb = {"num_boost_round": 40, "min_data_in_leaf": 3, "num_threads": 1, "seed": 0}
    members = [{"name": "reg", "family": "lightgbm", "params": {**lgb, "objective": "regression"}},
               {"name": "rank", "family": "lightgbm", "params": {**lgb, "objective": "lambdarank"}}]
    specs = {"reg": ModelSpec("lightgbm", members[0]["params"]), "rank": ModelSpec("lightgbm", members[1]["params"]),
             "ens": ModelSpec("ensemble", {"members": members})}
    results = train_models(specs, train, test, "s", ["f0", "f1", "f2", "f3"])
    ens = results["ens"].model
    assert ens.members[0] is results["reg"].model and ens.members[1] is results["rank"].model
    assert results["ens"].train_s >= results["reg"].train_s + results["rank"].train_s
    assert results["ens"].metrics["pca"] > 0.8
    # trained alone it is the same model (the members are deterministic): reuse changes cost, not result
    alone = train_models({"ens": specs["ens"]}, train, test, "s", ["f0", "f1", "f2", "f3"])["ens"]
    np.testing.assert_allclose(alone.model.predict(test), ens.predict(test), rtol=1e-9)
    # a member trained under other params is not reused
    other = {"reg": (results["reg"].model, 0.0), "rank": (train_models({"rank": ModelSpec("lightgbm", {**members[1]["params"], "num_leaves": 7})}, train, test, "s",
                                                                           ["f0", "f1", "f2", "f3"])["rank"].model, 0.0)}
    assert blend_of_trained(specs["ens"], other, train) is None
    # the study reuses them the same way
    metrics, _, _ = run_study({"A": table}, ["by_task"], specs, {"test_fraction": 0.25, "seed": 0}, "s", ["f0", "f1", "f2", "f3"])
    assert metrics["A"]["by_task"]["ens"]["pca"] == pytest.approx(results["ens"].metrics["pca"])
