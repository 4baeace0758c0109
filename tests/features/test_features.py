"""Trace tokenization and feature vectors, with expected values derived by hand from the traces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tensorcost import features as F
from tensorcost.features import (
    FLAT_PROGRAM_DIM,
    TOKEN_DIM,
    WORKLOAD_FEATURE_NAMES,
    TraceParseError,
    flat_feature_names,
    flat_program_features,
    flat_vector,
    per_task_labels,
    tokenize_trace,
    workload_features,
)
from tensorcost.features.program import ANN_INDEX, ANN_KEYS, KIND_INDEX, NUM_SLOTS, VOCAB, Decisions, decision_features, DECISION_FEATURE_NAMES
from tensorcost.features.workload import MAX_SHAPE_DIMS, OP_INDEX
from tensorcost.records import OP_KINDS
from tensorcost.hardware import HARDWARE_FEATURE_NAMES, catalog_target
from tensorcost.records import classify_op

ANN0 = len(VOCAB)  # first annotation-key column
SLOT0 = len(VOCAB) + len(ANN_KEYS)  # first numeric slot


def log2p1(x: float) -> float:
    """slog2 for x >= 0, written independently: log2(1 + x)."""
    return math.log2(1.0 + x)


def kind_of(tok: np.ndarray) -> str:
    hot = np.flatnonzero(tok[:ANN0])
    assert len(hot) == 1, "exactly one kind must be hot"
    return VOCAB[hot[0]]


def ann_of(tok: np.ndarray) -> str:
    hot = np.flatnonzero(tok[ANN0:SLOT0])
    assert len(hot) == 1, "exactly one annotation key must be hot"
    return ANN_KEYS[hot[0]]


# ----------------------------------------------------------------------------- MetaSchedule


def test_metaschedule_token_matrix_shape_and_kinds(ms_trace):
    tokens, _ = tokenize_trace(ms_trace)
    assert tokens.shape == (6, TOKEN_DIM)
    assert tokens.dtype == np.float32
    expected = ["GetSBlock", "GetLoops", "SamplePerfectTile", "Split", "SampleCategorical", "Annotate"]
    for row, kind in zip(tokens, expected):
        assert row[KIND_INDEX[kind]] == 1.0
        assert kind_of(row) == kind


def test_metaschedule_decisions_resolve_categorical(ms_trace):
    # inst 2 SamplePerfectTile decision [4, 32]; inst 4 SampleCategorical decision 2 over
    # candidates [0, 16, 64, 512] -> candidates[2] = 64.   => [4, 32, 64]
    _, decisions = tokenize_trace(ms_trace)
    assert decisions == [4, 32, 64]


def test_metaschedule_split_slots_hold_resolved_factors(ms_trace):
    tokens, _ = tokenize_trace(ms_trace)
    split = tokens[3]
    # Split inputs [l1, v3, v4]: l1 has no value, v3 = 4 and v4 = 32 (from SamplePerfectTile);
    # then attrs [true, false] -> 1, 0. Slots: log2(1+4), log2(1+32), log2(1+1), 0, 0, 0
    expected = [log2p1(4), log2p1(32), log2p1(1), 0.0, 0.0, 0.0]
    np.testing.assert_allclose(split[SLOT0:SLOT0 + NUM_SLOTS], expected, rtol=1e-6)
    assert ann_of(split) == "<none>"


def test_metaschedule_sampling_token_slots(ms_trace):
    tokens, _ = tokenize_trace(ms_trace)
    # SamplePerfectTile: slots = the decision [4, 32]
    np.testing.assert_allclose(tokens[2][SLOT0:SLOT0 + 2], [log2p1(4), log2p1(32)], rtol=1e-6)
    # SampleCategorical: [value 64, decision index 2, number of candidates 4]
    np.testing.assert_allclose(tokens[4][SLOT0:SLOT0 + 3], [log2p1(64), log2p1(2), log2p1(4)], rtol=1e-6)
    # GetLoops has no numeric input or attr: falls back to the number of outputs (2)
    assert tokens[1][SLOT0] == pytest.approx(log2p1(2))


def test_metaschedule_annotate_key_one_hot(ms_trace):
    tokens, _ = tokenize_trace(ms_trace)
    ann = tokens[5]
    assert ann[ANN0 + ANN_INDEX["meta_schedule.unroll_explicit"]] == 1.0
    assert ann_of(ann) == "meta_schedule.unroll_explicit"
    # the annotation value is the input variable v7 = 64 (resolved categorical)
    assert ann[SLOT0] == pytest.approx(log2p1(64))
    # every other instruction carries the "<none>" annotation key
    for row in tokens[:5]:
        assert ann_of(row) == "<none>"


def test_unknown_annotation_key_maps_to_other():
    trace = '[[["GetSBlock",[],["C","main"],["b0"]],["Annotate",["b0"],["my.custom_key"],[]]],[]]'
    tokens, decisions = tokenize_trace(trace)
    assert ann_of(tokens[1]) == "<other>"
    assert decisions == []


def test_empty_metaschedule_trace():
    tokens, decisions = tokenize_trace("[[], []]")
    assert tokens.shape == (0, TOKEN_DIM)
    assert decisions == []


# ----------------------------------------------------------------------------- Ansor


def test_ansor_steps(ansor_trace):
    tokens, decisions = tokenize_trace(ansor_trace)
    assert tokens.shape == (3, TOKEN_DIM)
    assert [kind_of(t) for t in tokens] == ["ansor:SP", "ansor:PR", "ansor:AN"]
    # SP lengths [2, 1, 4] then PR "auto_unroll_max_step$8" -> 8
    assert decisions == [2, 1, 4, 8]
    # SP slots: extent 1024 then the lengths
    np.testing.assert_allclose(
        tokens[0][SLOT0:SLOT0 + 4], [log2p1(1024), log2p1(2), log2p1(1), log2p1(4)], rtol=1e-6
    )
    # PR's pragma key becomes the ansor annotation key, its value the first slot
    assert ann_of(tokens[1]) == "ansor:auto_unroll_max_step"
    assert tokens[1][SLOT0] == pytest.approx(log2p1(8))
    # AN: numeric fields [4, 0, 3]
    np.testing.assert_allclose(tokens[2][SLOT0:SLOT0 + 3], [log2p1(4), 0.0, log2p1(3)], rtol=1e-6)


def test_two_step_ansor_list_is_not_mistaken_for_metaschedule():
    # A 2-element list of lists looks like [instructions, decisions] at first sight.
    tokens, decisions = tokenize_trace('[["SP",2,0,64,[8],1],["AN",2,0,3]]')
    assert [kind_of(t) for t in tokens] == ["ansor:SP", "ansor:AN"]
    assert decisions == [8]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text", ["not json", "[[1, 2", ""])
def test_malformed_json_raises(text):
    with pytest.raises(TraceParseError, match="not JSON"):
        tokenize_trace(text)


@pytest.mark.parametrize("text", ['{"steps": []}', "42", '"SP"', "null"])
def test_non_list_raises(text):
    with pytest.raises(TraceParseError, match="must be a JSON list"):
        tokenize_trace(text)


def test_list_of_non_steps_raises():
    with pytest.raises(TraceParseError, match="step 0"):
        tokenize_trace("[1, 2, 3]")


def test_trace_parse_error_is_a_value_error():
    assert issubclass(TraceParseError, ValueError)


# ----------------------------------------------------------------------------- flat vector


@pytest.mark.parametrize("which", ["ms", "ansor"])
def test_flat_vector_length_matches_names(which, ms_trace, ansor_trace):
    tokens, decisions = tokenize_trace(ms_trace if which == "ms" else ansor_trace)
    wl = workload_features("matmul", [[64, 64], [64, 64], [64, 64]], 2.0 * 64**3, 3 * 64 * 64 * 4.0)
    hw = catalog_target("zen5-2c.avx2-t1").features()
    assert len(hw) == len(HARDWARE_FEATURE_NAMES)
    vec = flat_vector(tokens, decisions, wl, hw)
    names = flat_feature_names(HARDWARE_FEATURE_NAMES)
    assert vec.shape == (len(names),)
    assert vec.dtype == np.float32
    assert len(names) == len(set(names)), "feature names must be unique"
    assert len(flat_program_features(tokens, decisions)) == FLAT_PROGRAM_DIM
    # the hardware features are the tail of the vector, in order
    np.testing.assert_allclose(vec[-len(hw):], hw)


def test_flat_program_features_values(ms_trace):
    tokens, decisions = tokenize_trace(ms_trace)
    names = flat_feature_names(HARDWARE_FEATURE_NAMES)
    feats = dict(zip(names, flat_program_features(tokens, decisions)))
    # one of each instruction kind in the trace
    assert feats["count_Split"] == 1.0
    assert feats["count_GetSBlock"] == 1.0
    assert feats["count_Fuse"] == 0.0
    # annotation counts exclude "<none>"; one unroll_explicit
    assert feats["ann_<none>"] == 0.0
    assert feats["ann_meta_schedule.unroll_explicit"] == 1.0
    # decisions by meaning: one loop split in two [4, 32], one categorical 64, no multi-level tile
    assert feats["split2_loops"] == 1.0
    assert feats["split2_log_outer"] == pytest.approx(2.0)
    assert feats["split2_log_inner"] == pytest.approx(5.0)
    assert feats["split2_share_inner"] == pytest.approx(5.0 / 7.0)
    assert feats["tiled_loops"] == 0.0
    assert feats["categorical_n"] == 1.0
    assert feats["categorical_log_max"] == pytest.approx(log2p1(64))
    assert not any(n.startswith("decision_") for n in names), "no position-indexed decisions"
    assert feats["n_tokens"] == 6
    assert feats["n_decisions"] == 3
    assert feats["sum_log_decisions"] == pytest.approx(log2p1(4) + log2p1(32) + log2p1(64))
    assert feats["max_log_decision"] == pytest.approx(log2p1(64))
    # the only annotated token (Annotate with value 64)
    assert feats["max_ann_value"] == pytest.approx(log2p1(64), rel=1e-6)


# ----------------------------------------------------------------------------- labels, workload


def test_per_task_labels():
    # task a: lat [2, 4] -> min 2 -> [2/2, 2/4] = [1, 0.5]
    # task b: lat [1, 3, 1] -> min 1 -> [1, 1/3, 1]
    tasks = ["a", "b", "a", "b", "b"]
    lat = [2.0, 1.0, 4.0, 3.0, 1.0]
    labels = per_task_labels(tasks, lat)
    np.testing.assert_allclose(labels, [1.0, 1.0, 0.5, 1 / 3, 1.0])
    t = np.asarray(tasks)
    for task in ("a", "b"):
        assert labels[t == task].max() == 1.0
    assert ((labels > 0) & (labels <= 1)).all()


@pytest.mark.parametrize(
    "name, kind",
    [
        ("fused_conv2d_add_relu", "conv2d"),
        ("fused_nn_conv2d_transpose_add", "conv2d_transpose"),
        ("fused_matmul_add", "matmul"),
        ("fused_batch_matmul", "batch_matmul"),
        ("fused_nn_dense_add", "dense"),
        ("fused_nn_max_pool2d", "pool"),
        ("softmax", "softmax"),
        ("fused_mean", "reduce"),
        ("fused_add_relu", "elementwise"),
        ("reshape", "layout"),
        ("transpose", "layout"),
        ("Conv2D_Layer", "conv2d"),  # case-insensitive
        ("mystery_op", "other"),
    ],
)
def test_classify_op(name, kind):
    assert classify_op(name) == kind
    assert kind in OP_KINDS


def test_classify_op_expand_dims_is_layout():
    assert classify_op("expand_dims") == "layout"


def test_workload_features():
    # matmul with output [64, 32]: flops = 2*64*64*32 = 262144, bytes = 1024
    # -> log2(1+262144), log2(1+1024), intensity 256 -> log2(257), 3 buffers,
    #    out dims log2(65), log2(33), then 0 x 4, one-hot at matmul
    shapes = [[64, 64], [64, 32], [64, 32]]
    wl = workload_features("matmul", shapes, 262144.0, 1024.0)
    assert len(wl) == len(WORKLOAD_FEATURE_NAMES)
    feats = dict(zip(WORKLOAD_FEATURE_NAMES, wl))
    assert feats["log2_flops"] == pytest.approx(math.log2(262145))
    assert feats["log2_bytes"] == pytest.approx(math.log2(1025))
    assert feats["arith_intensity"] == pytest.approx(math.log2(257))
    assert feats["n_buffers"] == 3.0
    assert feats["out_dim0"] == pytest.approx(math.log2(65))
    assert feats["out_dim1"] == pytest.approx(math.log2(33))
    assert all(feats[f"out_dim{i}"] == 0.0 for i in range(2, MAX_SHAPE_DIMS))
    onehot = wl[-len(OP_KINDS):]
    assert onehot[OP_INDEX["matmul"]] == 1.0 and sum(onehot) == 1.0


def test_workload_features_edge_cases():
    # no shapes, zero bytes: intensity 0 (no division by zero); unknown op kind -> "other"
    wl = workload_features("no-such-kind", [], 0.0, 0.0)
    assert len(wl) == len(WORKLOAD_FEATURE_NAMES)
    onehot = wl[-len(OP_KINDS):]
    assert onehot[OP_INDEX["other"]] == 1.0 and sum(onehot) == 1.0
    assert wl[:4] == [0.0, 0.0, 0.0, 0.0]


def test_slog2_is_signed():
    assert F.slog2(3.0) == pytest.approx(2.0)  # log2(1 + 3)
    assert F.slog2(-3.0) == pytest.approx(-2.0)
    assert F.slog2(0.0) == 0.0


def test_decision_features_mean_the_same_wherever_the_tiles_sit():
    # An SSRSRS matmul: spatial i, j in four levels, reduction k in two; the same schedule with the
    # loops sampled in another order (another operator's trace layout) gives the same features.
    i, j, k = [2, 4, 8, 2], [1, 8, 4, 4], [16, 4]
    a = Decisions([], tiles=[i, j, k], categoricals=[64], locations=[-2, -1, 3])
    b = Decisions([], tiles=[k, j, i], categoricals=[64], locations=[3, -1, -2])
    fa, fb = decision_features(a), decision_features(b)
    assert len(fa) == len(DECISION_FEATURE_NAMES)
    got = dict(zip(DECISION_FEATURE_NAMES, fa))
    assert got["tiled_loops"] == 2 and got["split2_loops"] == 1
    assert got["tiled_log_extent"] == pytest.approx(np.log2(128) + np.log2(128))
    assert got["tiled_log_outer"] == pytest.approx(1.0 + 0.0)       # log2 2 + log2 1
    assert got["tiled_log_inner"] == pytest.approx(1.0 + 2.0)       # log2 2 + log2 4
    assert got["tile_log_inner_volume"] == pytest.approx(3.0 + 2.0)  # spatial inner + reduction inner
    assert got["location_inline"] == 1 and got["location_root"] == 1 and got["location_mean_loop"] == 3
    # the last tiled loop's inner factor (the vectorized axis) is the one order-dependent feature
    names = list(DECISION_FEATURE_NAMES)
    same = [n for n in names if n != "tiled_log_inner_last"]
    assert [fa[names.index(n)] for n in same] == pytest.approx([fb[names.index(n)] for n in same])


def test_ansor_split_gets_its_outer_factor_from_the_extent():
    _, dec = tokenize_trace('[["SP",2,0,64,[2,4,2],1],["SP",2,1,32,[8],1]]')
    assert dec.tiles == [[4.0, 2.0, 4.0, 2.0], [4.0, 8.0]]


def test_loop_features_keep_each_loop_counted_from_the_last():
    # the SSRSRS matmul above: spatial i, j in four levels, reduction k in two
    from tensorcost.features.program import LOOP_FEATURE_NAMES, loop_features
    i, j, k = [2, 4, 8, 2], [1, 8, 4, 4], [16, 4]
    got = dict(zip(LOOP_FEATURE_NAMES, loop_features(Decisions([], tiles=[i, j, k]))))
    assert len(got) == len(LOOP_FEATURE_NAMES)
    # last0 is j (the last tiled loop: the contiguous axis), last1 is i
    assert got["tiled_last0_log_inner"] == 2.0 and got["tiled_last1_log_inner"] == 1.0
    assert got["tiled_last0_log_outer"] == 0.0 and got["tiled_last1_log_outer"] == 1.0
    assert got["tiled_last0_log_extent"] == pytest.approx(7.0) and got["tiled_last1_log_extent"] == pytest.approx(7.0)
    assert got["tiled_last0_log_in2"] == pytest.approx(4.0)     # 4 * 4 elements of j at the two inner levels
    assert got["tiled_last1_log_in3"] == pytest.approx(2 + 3 + 1)  # 4 * 8 * 2
    assert got["tiled_log_in2_volume"] == pytest.approx(4.0 + 4.0)  # j's 4 * 4 x i's 8 * 2
    assert got["split2_last0_log_outer"] == 4.0 and got["split2_last0_log_inner"] == 2.0
    # absent loops read 0, and a loop sampled in another place moves to another slot
    assert got["tiled_last2_log_extent"] == 0.0 and got["split2_last1_log_extent"] == 0.0
    swapped = dict(zip(LOOP_FEATURE_NAMES, loop_features(Decisions([], tiles=[j, i, k]))))
    assert swapped["tiled_last0_log_inner"] == 1.0 and swapped["tiled_log_in2_volume"] == got["tiled_log_in2_volume"]


def test_a_loop_tiled_in_three_levels_has_no_fourth_inner_level():
    from tensorcost.features.program import LOOP_FEATURE_NAMES, loop_features
    got = dict(zip(LOOP_FEATURE_NAMES, loop_features(Decisions([], tiles=[[4, 2, 8]]))))
    assert got["tiled_last0_log_in3"] == got["tiled_last0_log_in4"] == pytest.approx(6.0)
    assert got["tiled_last0_log_in1"] == 3.0 and got["tiled_last0_log_in2"] == 4.0


def test_lane_features_count_a_tile_in_the_machines_float32_lanes():
    import math

    from tensorcost.features.cross import LANE_FEATURE_NAMES, LANE_INPUTS, lane_features

    names = ["other"] + list(LANE_INPUTS)
    rows = []
    for vector_bytes, tile, present in ((32, 8, True), (32, 7, True), (32, 12, True), (64, 8, True), (32, 8, False), (0, 5, True)):
        r = dict.fromkeys(names, 0.0)
        r["hw_vector_bytes"] = math.log2(1 + vector_bytes)
        r["tiled_last0_log_extent"] = 6.0 if present else 0.0
        r["tiled_last0_log_in1"] = math.log2(tile) if tile > 1 else 0.0
        r["vector_log_extent"] = math.log2(tile) if present else -1.0  # the same tile vectorized; -1: unknown
        rows.append([r[n] for n in names])
    out = lane_features(np.asarray(rows, np.float32), names)
    col = {n: out[:, i] for i, n in enumerate(LANE_FEATURE_NAMES)}
    rem, full, div = col["lanes_last0_in1_remainder"], col["lanes_last0_in1_full"], col["lanes_last0_in1_divides"]
    # AVX2: 8 lanes; 8 fills one register, 7 none, 12 one and half of another; AVX-512: 16 lanes, 8 fills half;
    # a loop the program lacks reads 0; no SIMD: one lane, every tile divides
    np.testing.assert_allclose(rem, [0.0, 7 / 8, 0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(full, [1.0, 0.0, 1.0, 0.0, 0.0, math.log2(6)], rtol=1e-6)
    np.testing.assert_array_equal(div, [1, 0, 0, 0, 0, 1])
    assert out.shape == (6, len(LANE_FEATURE_NAMES)) and not out[:, 6:-2].any()  # the loops these programs lack
    np.testing.assert_allclose(col["lanes_vectorized_remainder"], rem)  # the vectorized loop counts alike; unknown reads 0
    np.testing.assert_allclose(col["lanes_vectorized_full"], full, rtol=1e-6)
    with pytest.raises(ValueError, match="tiled_last2_log_in2"):
        lane_features(np.zeros((1, 3), np.float32), ["hw_vector_bytes", "tiled_last0_log_in1", "tiled_last0_log_extent"])


def test_structure_features_read_locations_and_what_the_postprocessor_fused():
    from tensorcost.features.program import STRUCTURE_ABSENT, STRUCTURE_FEATURE_NAMES
    from helpers import STRUCT_TRACE

    def structure(trace):
        return dict(zip(STRUCTURE_FEATURE_NAMES, tokenize_trace(trace)[1].structure))

    got = structure(STRUCT_TRACE)
    # one location decision (under loop 1); the first loop nest fuses 2 loops into its parallel loop:
    # the Reorder's first two, factors 2 and 16; the largest nest (the reduction's rewrite aside)
    # vectorizes 2: the last two, 4 and 1
    assert got == {"location_first0": 1.0, "location_first1": -3.0, "location_first2": -3.0,
                   "parallel_log_extent": 5.0, "vector_log_extent": 2.0}
    assert structure(STRUCT_TRACE.replace("[[3,[2,4,8,1]],[5,[16,4]],[8,1]]]", "[[3,[1,1,1,1]],[5,[64,1]],[8,-2]]]"))["parallel_log_extent"] == 6.0
    inferred = structure(STRUCT_TRACE.replace('"l1","v3","v4"', '"l1","None","v4"'))
    assert inferred["parallel_log_extent"] == -1.0 and inferred["vector_log_extent"] == 2.0
    assert structure(STRUCT_TRACE.replace('["EnterPostproc",[],[],[]],', ""))["parallel_log_extent"] == -1.0
    ansor = tokenize_trace('[["SP",2,0,1024,[2,1,4],1]]')[1]
    assert flat_program_features(*tokenize_trace('[["SP",2,0,1024,[2,1,4],1]]'))[-len(STRUCTURE_FEATURE_NAMES):] == STRUCTURE_ABSENT
    assert ansor.structure is None
