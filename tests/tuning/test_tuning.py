"""The MetaSchedule cost-model adapter: live candidates are featurized exactly as the training
records were, and any model family scores them (real bundled traces; TVM for the adapter)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensorcost import dataset
from tensorcost.collect import load_task_set
from tensorcost.evaluation import ModelSpec
from tensorcost.features import FeatureTable, featurize_table, workload_features
from tensorcost.hardware import HARDWARE_FEATURE_NAMES, catalog_target
from tensorcost.tuning import score_candidates, tune_summary

TARGET = "zen5-2c.avx2-t1"


@pytest.fixture(scope="module")
def trained():
    import pyarrow as pa
    import pyarrow.compute as pc

    table = dataset.bundled_tables([TARGET])[TARGET]
    task = sorted(set(table.column("task_id").to_pylist()))[0]
    table = table.filter(pc.equal(table["task_id"], pa.scalar(task)))
    hw = catalog_target(TARGET)
    frame = featurize_table(table, hw.features(), HARDWARE_FEATURE_NAMES, slot=TARGET)
    data = FeatureTable(frame, TARGET)
    model = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1}).create(TARGET, "s", frame.attrs["feature_names"])
    model.fit(data)
    return model, table, data, hw


def test_live_candidates_score_as_their_training_records(trained):
    model, table, data, hw = trained
    rows = [r for r in table.to_pylist() if r["error_no"] == 0]
    wl = workload_features(rows[0]["op_kind"], json.loads(rows[0]["shapes"]), rows[0]["flops"], rows[0]["bytes_moved"])
    live = score_candidates(model, [r["trace"] for r in rows], wl, hw.features())
    np.testing.assert_allclose(live, model.predict(data), rtol=1e-6)
    assert score_candidates(model, [], wl, hw.features()).shape == (0,)


def test_tune_summary_compares_both_cost_models():
    report = {"untuned_network_latency_ms": {"median": 6.0},
              "cost_models": {"tensorcost": {"network_latency_ms": {"median": 0.2}, "tuned_tasks_weighted_latency_us": 100.0, "tuning_wall_s": 50.0},
                              "tvm_xgb": {"network_latency_ms": {"median": 0.3}, "tuned_tasks_weighted_latency_us": 150.0, "tuning_wall_s": 40.0}}}
    s = tune_summary(report)
    assert s["speedup_vs_tvm_xgb"] == pytest.approx(1.5) and s["untuned_network_ms"] == 6.0 and s["tvm_xgb_tuning_s"] == 40.0


@pytest.mark.slow
def test_the_adapter_scores_metaschedule_candidates(trained):
    """MetaSchedule hands the adapter real candidates (schedules re-applied from bundled traces)."""
    import tvm.s_tir.meta_schedule as ms

    from tensorcost.tuning import make_registry_cost_model
    from tensorcost.tvm_support import apply_trace_json, register_x86_intrinsics_only, tvm_target

    model, table, data, hw = trained
    register_x86_intrinsics_only()
    task_id = table.column("task_id")[0].as_py()
    tasks, _, _ = load_task_set(dataset.programs_dir("cpu"))
    task = next(t for t in tasks if t.task_id == task_id)
    rows = [r for r in table.to_pylist() if r["error_no"] == 0][:8]
    cands = []
    for r in rows:
        sch = apply_trace_json(task.mod, r["trace"])
        cands.append(ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    adapter = make_registry_cost_model(model, hw)
    ctx = ms.TuneContext(task.mod, target=tvm_target(hw), task_name=task.task_name, num_threads=1)
    scores = adapter.predict(ctx, cands)
    assert scores.shape == (8,) and adapter.n_predicted == 8
    np.testing.assert_allclose(scores, model.predict(data)[:8], rtol=1e-5)  # no skew between training and search
