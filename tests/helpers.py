"""Builders shared by tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json

# A small MetaSchedule trace: [[instructions...], [[inst_index, decision], ...]].
MS_TRACE = (
    '[[["GetSBlock",[],["C","main"],["b0"]],'
    '["GetLoops",["b0"],[],["l1","l2"]],'
    '["SamplePerfectTile",["l1"],[2,64],["v3","v4"]],'
    '["Split",["l1","v3","v4"],[true,false],["l5","l6"]],'
    '["SampleCategorical",[],[[0,16,64,512],[0.25,0.25,0.25,0.25]],["v7"]],'
    '["Annotate",["b0","v7"],["meta_schedule.unroll_explicit"],[]]],'
    "[[2,[4,32]],[4,2]]]"
)

# A TenSet-style Ansor step list.
ANSOR_TRACE = '[["SP",2,0,1024,[2,1,4],1],["PR",2,0,"auto_unroll_max_step$8"],["AN",4,0,3]]'


def record_row(
    i: int = 0,
    *,
    target: str = "testcpu-1c.avx2-t1",
    task_id: str = "00000000000000aa",
    latency: float | None = 1e-3,
    error_no: int = 0,
    **overrides,
) -> dict:
    """One canonical records row (every column of records.RECORDS_SCHEMA) with sane defaults."""
    trace = overrides.pop("trace", MS_TRACE.replace("64,512", f"64,{512 + i}"))
    prog = overrides.pop("program_id", f"{i:016x}")
    row = {
        "record_id": f"rec-{target}-{task_id}-{i:04d}",
        "source": "tvm-metaschedule",
        "target": target,
        "task_id": task_id,
        "task_name": "fused_matmul_add",
        "networks": json.dumps({"resnet_18": 2}),
        "task_weight": 2,
        "op_kind": "matmul",
        "shapes": json.dumps([[64, 64], [64, 64], [64, 64]]),
        "flops": 2.0 * 64 * 64 * 64,
        "bytes_moved": 3.0 * 64 * 64 * 4,
        "program_id": prog,
        "trace": trace,
        "latencies": [] if error_no else [latency, latency],
        "latency_s": None if error_no else latency,
        "error_no": error_no,
        "error_msg": "build failed" if error_no else None,
        "measured_at": 1_700_000_000.0 + i,
        "tvm_version": "0.27.0",
    }
    row.update(overrides)
    return row


def feature_table(x, groups, latency, target: str = "t", networks: str = '{"net": 1}'):
    """A FeatureTable of flat vectors `x` (rows), ranking groups (task ids) and latencies."""
    import numpy as np
    import pandas as pd

    from tensorcost.features import FeatureTable, per_task_labels

    x = np.asarray(x, dtype=np.float32)
    groups = [str(g) for g in groups]
    frame = pd.DataFrame({
        "record_id": [f"r{i}" for i in range(len(x))], "task_id": groups, "program_id": [f"p{i}" for i in range(len(x))],
        "slot": [target] * len(x), "target": [target] * len(x), "task_weight": np.ones(len(x), dtype=np.int32), "networks": [networks] * len(x),
        "latency_s": np.asarray(latency, dtype=np.float64), "label": per_task_labels(groups, latency), "flat": list(x),
        "n_tokens": np.zeros(len(x), dtype=np.int64), "tokens": [np.zeros(0, np.float32)] * len(x),
    })
    return FeatureTable(frame, target)



def synthetic_ranking_data(seed=0, n_tasks=8, per_task=40):
    """(x, labels, latency, groups): 4 features, feature 0 drives latency; labels min/latency per task."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((n_tasks * per_task, 4)).astype(np.float32)
    groups = np.repeat([f"task{i}" for i in range(n_tasks)], per_task)
    latency = 1e-3 * (0.2 + x[:, 0] + 0.1 * x[:, 1])
    labels = np.empty_like(latency)
    for g in np.unique(groups):
        m = groups == g
        labels[m] = latency[m].min() / latency[m]
    return x, labels, latency, groups


def register_small_lightgbm(tmp_path, target: str, name: str, label_fn, validation: str = "passed", schema: str | None = None, experiment: str = "test"):
    """(version, ranking report): a real small LightGBM ranker on `synthetic_ranking_data`, trained
    on `label_fn(labels)`, registered as the target's candidate with its model-card tags."""
    import numpy as np

    from tensorcost import registry
    from tensorcost.features import FEATURE_SCHEMA_VERSION
    from tensorcost.metrics import ranking_report
    from tensorcost.models.lightgbm_model import LightGBMCostModel

    schema = schema or FEATURE_SCHEMA_VERSION
    x, labels, latency, groups = synthetic_ranking_data()
    test = np.arange(len(x)) % 4 == 0
    model = LightGBMCostModel.create(target, schema, ["f0", "f1", "f2", "f3"], objective="lambdarank", num_boost_round=30, min_data_in_leaf=3, seed=0,
                                     deterministic=True, num_threads=1)
    train = feature_table(x[~test], groups[~test], latency[~test])
    train.frame["label"] = label_fn(labels)[~test]
    model.fit(train)
    rep = ranking_report(groups[test].tolist(), model.predict(feature_table(x[test], groups[test], latency[test])), latency[test])
    out = tmp_path / name
    model.save(out)
    tags = {"target": target, "model_family": "lightgbm", "feature_schema": schema, "eval_data_hash": "synthetic-v1", "validation": validation,
            **{f"metric.{k}": v for k, v in rep.to_dict().items()}}
    version = registry.log_and_register(out, target, experiment=experiment, run_name=name, params={}, metrics=rep.to_dict(), tags=tags, alias=registry.CANDIDATE)
    return version, rep


def small_featurized_table(tasks: int = 3, per_task: int = 10, seed: int = 0):
    """A FeatureTable of real featurized records (`record_row`'s programs), the same for every
    call with the same arguments (for a child process to rebuild the parent's table)."""
    import numpy as np

    from tensorcost.features import FeatureTable, featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.records import to_table

    rng = np.random.default_rng(seed)
    rows = [record_row(i, task_id=f"{t:016x}", latency=float(rng.uniform(1e-4, 1e-3))) for t in range(tasks) for i in range(per_task)]
    frame = featurize_table(to_table(rows), [1.0] * len(HARDWARE_FEATURE_NAMES), HARDWARE_FEATURE_NAMES)
    return FeatureTable(frame, "t")


# loop structure (tc-feat-5): a Reorder, postproc loop nests with parallel / vectorized fuses and
# a reduction's rewrite
STRUCT_TRACE = (
    '[[["GetSBlock",[],["C","main"],["b0"]],'
    '["GetSBlock",[],["P","main"],["b1"]],'
    '["GetLoops",["b0"],[],["l1","l2"]],'
    '["SamplePerfectTile",["l1"],[4,64],["v3","v4","v5","v6"]],'
    '["Split",["l1","v3","v4","v5","v6"],[true,false],["l7","l8","l9","l10"]],'
    '["SamplePerfectTile",["l2"],[2,64],["v11","v12"]],'
    '["Split",["l2","v11","v12"],[true,false],["l13","l14"]],'
    '["Reorder",["l7","l13","l8","l9","l14","l10"],[],[]],'
    '["SampleComputeLocation",["b1"],[],["l15"]],'
    '["ComputeAt",["b1","l15"],[true,-1],[]],'
    '["EnterPostproc",[],[],[]],'
    '["GetLoops",["b1"],[],["l16","l17","l18","l19"]],'
    '["Fuse",["l16","l17"],[1],["l20"]],'
    '["Parallel",["l20"],[],[]],'
    '["GetLoops",["b0"],[],["l21","l22","l23","l24","l25","l26"]],'
    '["Fuse",["l25","l26"],[1],["l27"]],'
    '["Vectorize",["l27"],[],[]],'
    '["GetLoops",["b0"],[],["l28","l29","l30","l31","l32","l33"]],'
    '["DecomposeReduction",["b0","l30"],[],["b34"]]],'
    "[[3,[2,4,8,1]],[5,[16,4]],[8,1]]]"
)
