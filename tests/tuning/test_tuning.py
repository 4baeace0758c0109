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
    model = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1}).create(data)
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


def _candidates_and_results(table, n: int):
    """Real MetaSchedule candidates (bundled traces re-applied) with their real measured times."""
    import tvm.s_tir.meta_schedule as ms

    from tensorcost.tvm_support import apply_trace_json

    task_id = table.column("task_id")[0].as_py()
    tasks, _, _ = load_task_set(dataset.programs_dir("cpu"))
    task = next(t for t in tasks if t.task_id == task_id)
    rows = [r for r in table.to_pylist() if r["error_no"] == 0][:n]
    cands, results = [], []
    for r in rows:
        sch = apply_trace_json(task.mod, r["trace"])
        cands.append(ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
        results.append(ms.runner.RunnerResult(run_secs=[float(x) for x in r["latencies"]], error_msg=None))
    return task, cands, results, np.array([r["latency_s"] for r in rows])


@pytest.mark.slow
def test_online_mode_learns_from_the_search_measurements_and_frozen_does_not(trained):
    import tvm.s_tir.meta_schedule as ms

    from tensorcost.metrics import pairwise_comparison_accuracy
    from tensorcost.tuning import make_registry_cost_model
    from tensorcost.tvm_support import register_x86_intrinsics_only, tvm_target

    model, table, data, hw = trained
    register_x86_intrinsics_only()
    task, cands, results, latency = _candidates_and_results(table, 32)
    ctx = ms.TuneContext(task.mod, target=tvm_target(hw), task_name=task.task_name, num_threads=1)
    frozen, online = make_registry_cost_model(model, hw, "frozen"), make_registry_cost_model(model, hw, "online", min_new=16)
    before = online.predict(ctx, cands)
    failed = ms.runner.RunnerResult(run_secs=None, error_msg="build failed")
    for a in (frozen, online):
        a.update(ctx, cands[:4], [failed] * 4)  # failures teach nothing
        a.update(ctx, cands, results)
    assert frozen.n_refits == 0 and online.n_refits == 1 and frozen.n_updates == online.n_updates == 36
    np.testing.assert_allclose(frozen.predict(ctx, cands), before)
    after = online.predict(ctx, cands)
    pca = lambda s: pairwise_comparison_accuracy(["t"] * len(s), s, latency)  # noqa: E731
    assert not np.allclose(after, before) and pca(after) > pca(before)  # it learned the search's own measurements
    assert online.base is model  # the pre-trained model itself is never modified


@pytest.fixture(scope="module")
def trained_joint(trained):
    """`lightgbm_joint` (our features and MetaSchedule's per-store features) on the same task, its
    MetaSchedule features extracted offline from the records' traces, as the msfeatures stage does."""
    from tensorcost.collect import load_tasks
    from tensorcost.features.metaschedule import extract_ms_features
    from tensorcost.tvm_support import tvm_target

    _, table, data, hw = trained
    valid = data.take(np.flatnonzero(data.frame["latency_s"].to_numpy() > 0))
    traces = dict(zip(table.column("record_id").to_pylist(), table.column("trace").to_pylist()))
    rows = [(t, traces[r]) for t, r in zip(valid.frame["task_id"], valid.frame["record_id"])]
    valid.ms_features = extract_ms_features(load_tasks([dataset.programs_dir("cpu")]), rows, tvm_target(hw))
    model = ModelSpec("lightgbm_joint", {"objective": "regression", "num_boost_round": 20, "num_threads": 1}).create(valid)
    model.fit(valid)
    return model, valid


@pytest.mark.slow
def test_a_model_reading_metaschedule_features_tunes_frozen_and_online(trained, trained_joint):
    """A served model that reads MetaSchedule's features scores live candidates as it scored their
    records (the features extracted live match the offline ones) and, online, refits on the
    features of the candidates it measured (the traces alone would not give them)."""
    import tvm.s_tir.meta_schedule as ms

    from tensorcost.tuning import make_registry_cost_model
    from tensorcost.tvm_support import register_x86_intrinsics_only, tvm_target

    _, table, _, hw = trained
    model, valid = trained_joint
    assert "ms_features" in model.inputs
    register_x86_intrinsics_only()
    task, cands, results, _ = _candidates_and_results(table, 24)
    ctx = ms.TuneContext(task.mod, target=tvm_target(hw), task_name=task.task_name, num_threads=1)
    frozen, online = make_registry_cost_model(model, hw, "frozen"), make_registry_cost_model(model, hw, "online", min_new=16)
    np.testing.assert_allclose(frozen.predict(ctx, cands), model.predict(valid)[:24], rtol=1e-5)  # no skew between the stage and the search
    before = online.predict(ctx, cands)
    online.update(ctx, cands, results)
    assert online.n_refits == 1 and all(m is not None and m.ndim == 2 for rows in online.measured.values() for _, _, m in rows)
    assert not np.allclose(online.predict(ctx, cands), before) and online.base is model


def test_bad_modes_and_uris_are_one_line_errors(trained):
    from tensorcost.errors import UserError
    from tensorcost.registry import load_uri
    from tensorcost.tuning import make_registry_cost_model

    model, _, _, hw = trained
    with pytest.raises(UserError, match="cost model mode 'learning': valid modes are frozen, online"):
        make_registry_cost_model(model, hw, "learning")
    for uri, msg in (("tensorcost-zen5-2c.avx2-t1@champion", "expected models:/tensorcost-<target>@<alias>"),
                     ("models:/resnet@champion", "'resnet' is not a tensorcost model name"),
                     ("models:/tensorcost-zen9@x", "zen9")):
        with pytest.raises(UserError, match=msg):
            load_uri(uri)


def test_cost_model_from_a_registry_uri_scores_as_the_registered_model(trained, mlflow_store, tmp_path):
    pytest.importorskip("tvm")
    from tensorcost import registry
    from tensorcost.tuning import cost_model

    _, _, data, _ = trained
    model = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1}).create(data, target=TARGET)
    model.fit(data)
    model.save(tmp_path / "m")
    tags = {"target": TARGET, "feature_schema": model.metadata.feature_schema, "validation": "passed"}
    version = registry.log_and_register(tmp_path / "m", TARGET, experiment="t", run_name="m", params={}, metrics={}, tags=tags, alias="candidate")
    for uri in (f"models:/tensorcost-{TARGET}@candidate", f"models:/tensorcost-{TARGET}/{version}"):
        adapter = cost_model(uri, mode="online")
        assert adapter.mode == "online" and adapter.registry_info["version"] == version
        np.testing.assert_allclose(adapter.base.predict(data), model.predict(data), rtol=1e-6)
    with pytest.raises(registry.RegistryError, match="has alias 'champion'"):
        cost_model(f"models:/tensorcost-{TARGET}@champion")


@pytest.mark.slow
def test_a_plain_tune_tir_script_tunes_with_the_registry_model_online(trained, mlflow_store, tmp_path):
    """The README's example: a MetaSchedule script that knows nothing of tensorcost but the URI."""
    import tvm
    import tvm.s_tir.meta_schedule as ms
    from tvm import te

    from tensorcost import registry
    from tensorcost.features import FEATURE_SCHEMA_VERSION
    from tensorcost.tuning import cost_model, fast_local_builder

    _, _, data, _ = trained
    model = ModelSpec("lightgbm", {"objective": "regression", "num_boost_round": 20, "num_threads": 1}).create(data, target=TARGET)
    model.fit(data)
    model.save(tmp_path / "m")
    registry.log_and_register(tmp_path / "m", TARGET, experiment="t", run_name="m", params={}, metrics={},
                              tags={"target": TARGET, "feature_schema": FEATURE_SCHEMA_VERSION, "validation": "passed"}, alias="champion-test")

    n = 64
    a, b = te.placeholder((n, n), name="A"), te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    matmul = tvm.IRModule({"main": te.create_prim_func([a, b, c])})

    adapter = cost_model(f"models:/tensorcost-{TARGET}@champion-test", mode="online", min_new=4)
    db = ms.tune_tir(matmul, tvm.target.Target({"kind": "llvm", "num-cores": 2}), str(tmp_path / "tune"), max_trials_global=16, num_trials_per_iter=8,
                     cost_model=adapter, builder=fast_local_builder(), num_tuning_cores=2)
    secs = [float(r.run_secs[0]) for r in db.get_all_tuning_records()]
    assert len(secs) == 16 and sum(s < 1.0 for s in secs) >= 8  # measured, not failed (MetaSchedule writes 1e10 for a failure)
    assert adapter.n_predicted > 0 and adapter.n_updates >= 8 and adapter.n_refits >= 1
