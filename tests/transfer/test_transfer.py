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
    # the first k% of the pool is a prefix: smaller k is a subset of larger k
    assert set(order[:10]) <= set(order[:30])


def test_every_approach_scored_on_the_same_test_side():
    source_data, names = _slot("sapphirerapids-2c.avx2-t1")
    target_data, _ = _slot("zen5-2c.avx2-t1")
    lgb = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 30, "num_threads": 1, "finetune_rounds": 10})
    train, _ = train_test(source_data, "within_task", {"test_fraction": 0.2, "seed": 0})
    source = lgb.create("sapphirerapids-2c.avx2-t1", "tc-feat-test", names)
    source.fit(train)
    peers = {"lightgbm_reg": lgb, "random": ModelSpec("random")}
    curves, kept = transfer_study({"spr": source}, target_data, [10, 100], peers, test_fraction=0.5, seed=0, feature_schema="tc-feat-test",
                                  feature_names=names, keep_finetuned_at=10)
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
    source = ModelSpec("random").create("x", "s", names)
    curves, _ = transfer_study({"r": source}, data, [50], {"tvm_xgb": ModelSpec("tvm_xgb")}, test_fraction=0.5, seed=0, feature_schema="s", feature_names=names)
    assert "tvm_xgb" not in curves and set(curves) == {"zero_shot:r", "finetune:r"}
