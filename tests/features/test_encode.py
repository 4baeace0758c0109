"""`encode_programs` (the batched, plan-caching encoder) returns exactly what
`encode_programs_reference` returns: on real MetaSchedule programs of every bundled platform, on
real Ansor records, on edge cases, with perturbed decisions, and in input order."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensorcost.features import encode as E
from tensorcost.features.encode import encode_programs
from helpers import STRUCT_TRACE
from tensorcost.features.program import COMPACT_DIM, FLAT_PROGRAM_DIM, TraceParseError, encode_programs_reference

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_FILES = sorted((ROOT / "data" / "bundled" / "platforms").glob("*/*.parquet"))
WHOLE_FILE = ROOT / "data" / "bundled" / "platforms" / "zen5-2c" / "avx2-t1.parquet"
ANSOR_LOGS = sorted((ROOT / "tests" / "data" / "autoscheduler_logs").glob("*.json"))


def _clear_caches():
    E._plans.clear()
    E._posts.clear()
    E._insts.clear()


@pytest.fixture(autouse=True)
def fresh_caches():
    _clear_caches()
    yield
    _clear_caches()


def assert_same(traces):
    got = encode_programs(traces)
    want = encode_programs_reference(traces)
    assert len(got) == 3
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
    feats, offsets, toks = got
    # bit-equal: compare the raw bytes (also tells 0.0 from -0.0)
    bad = np.nonzero((feats.view(np.int64) != want[0].view(np.int64)).any(axis=1))[0]
    assert len(bad) == 0, f"rows {bad[:5].tolist()} differ, e.g. trace {traces[bad[0]][:300]!r}"
    assert np.array_equal(offsets, want[1])
    assert np.array_equal(toks.view(np.int32), want[2].view(np.int32))
    return got


def _traces(path: Path) -> list[str]:
    return pd.read_parquet(path, columns=["trace"])["trace"].tolist()


def _ansor_traces() -> list[str]:
    out = []
    for path in ANSOR_LOGS:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                steps = json.loads(line)["i"][1][1]
                out.append(json.dumps(steps))
                out.append(orjson.dumps(steps).decode())
    return out


# -- real programs --------------------------------------------------------------------------------


def test_platform_files_found():
    assert len(PLATFORM_FILES) >= 10 and WHOLE_FILE in PLATFORM_FILES


@pytest.mark.parametrize("path", PLATFORM_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_bundled_platform_sample(path):
    traces = _traces(path)
    rng = random.Random(hash(path.name) % 1000)
    sample = traces if len(traces) <= 1000 else rng.sample(traces, 1000)
    assert_same(sample)
    assert_same(sample)  # again, from warm caches


def test_whole_file_all_rows():
    traces = _traces(WHOLE_FILE)
    assert len(traces) > 6000
    assert_same(traces)
    # the fast path really is taken (and stays exact) for these traces
    assert sum(p is not None for by in E._plans.values() for p in by.values()) > 10


def test_ansor_records():
    traces = _ansor_traces()
    assert len(traces) >= 50
    assert_same(traces)


def test_output_rows_follow_input_order_when_plans_interleave():
    ms = []
    for path in PLATFORM_FILES[:4]:
        ms += _traces(path)[:150]
    traces = ms + _ansor_traces() + [MS_TRACE, "[]", "[[],[]]"]
    random.Random(7).shuffle(traces)
    feats, offsets, toks = assert_same(traces)
    # each row alone gives the same slice
    for i in (0, 5, len(traces) // 2, len(traces) - 1):
        f1, o1, t1 = encode_programs([traces[i]])
        assert np.array_equal(f1[0], feats[i])
        assert np.array_equal(t1, toks[offsets[i]:offsets[i + 1]])


# -- edge cases -----------------------------------------------------------------------------------

MS_TRACE = (
    '[[["GetSBlock",[],["C","main"],["b0"]],'
    '["GetLoops",["b0"],[],["l1","l2","l3"]],'
    '["SamplePerfectTile",["l1"],[4,64],["v3","v4","v5","v6"]],'
    '["Split",["l1","v3","v4","v5","v6"],[true,false],["l7","l8","l9","l10"]],'
    '["SamplePerfectTile",["l2"],[2,64],["v11","v12"]],'
    '["Split",["l2","v11","v12"],[true,false],["l13","l14"]],'
    '["SampleCategorical",[],[[0,16,64,512],[0.25,0.25,0.25,0.25]],["v15"]],'
    '["Annotate",["b0","v15"],["meta_schedule.unroll_explicit"],[]],'
    '["SampleComputeLocation",["b0"],[],["l16"]],'
    '["ComputeAt",["b0","l16"],[true,-1],[]],'
    '["EnterPostproc",[],[],[]],'
    '["Fuse",["l7","l8"],[1],["l17"]],'
    '["Parallel",["l17"],[],[]],'
    '["Split",["l9","None",64],[true,false],["l18","l19"]],'
    '["Annotate",["b0",4],["meta_schedule.parallel"],[]]],'
    "[[2,[2,4,8,1]],[4,[16,4]],[6,2],[8,1]]]"
)


def _with_decisions(trace: str, decisions) -> str:
    """`trace` with its decisions list (the last element: ints and lists only, no strings)
    replaced, the instructions' text kept byte for byte. Found by matching brackets back from its
    end: a trace without decisions ends in `[]]`, where looking for the last `[[` lands inside
    the instructions."""
    body = trace.rstrip()[:-1].rstrip()  # without the outer list's `]`: ends with the decisions' `]`
    depth = 0
    for i in range(len(body) - 1, -1, -1):
        depth += {"]": 1, "[": -1}.get(body[i], 0)
        if depth == 0:
            return body[:i] + json.dumps(decisions, separators=(",", ":")) + "]"
    raise ValueError(f"no decisions list at the end of {trace[-40:]!r}")


def test_empty_batch():
    feats, offsets, toks = assert_same([])
    assert feats.shape == (0, FLAT_PROGRAM_DIM) and offsets.tolist() == [0] and toks.shape == (0, COMPACT_DIM)


@pytest.mark.parametrize("trace", ["[[],[]]", "[[],[[0,1]]]", "[]", "[[], []]"])
def test_zero_instructions(trace):
    assert_same([trace, MS_TRACE, trace])


def test_small_trace_variants():
    variants = [
        MS_TRACE,
        _with_decisions(MS_TRACE, [[2, [1, 1, 1, 1]], [4, [1, 1]], [6, 0], [8, -2]]),
        _with_decisions(MS_TRACE, [[2, [0, 0, 0, 0]], [4, [0, 7]], [6, 3], [8, -1]]),
        _with_decisions(MS_TRACE, [[2, [512, 2, 1, 3]], [4, [1, 1000]], [6, 9], [8, 0]]),  # categorical out of range
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, -1], [8, 3]]),  # negative index: last candidate
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, -4], [8, 3]]),
        _with_decisions(MS_TRACE, [[4, [16, 4]], [2, [2, 4, 8, 1]], [8, 2], [6, 1]]),  # other order
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, 1], [9, 1]]),  # decision on ComputeAt
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, 1], [12, 5]]),  # decision in postproc
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, 1], [2, [3, 3, 3, 3]]]),  # duplicate
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]]]),  # fewer decisions
        _with_decisions(MS_TRACE, []),
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, 1], [8, 1], [99, 3]]),
        _with_decisions(MS_TRACE, [[2, [2, 4.5, 8, 1]], [4, [16, 4]], [6, 1], [8, 1]]),  # float decision
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, 1], [8, 1.0]]),
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 12345678901]], [4, [16, 4]], [6, 1], [8, 1]]),  # big ints
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 2**70]], [4, [16, 4]], [6, 1], [8, 1]]),
        _with_decisions(MS_TRACE, [[2, [2, -4, 8, 1]], [4, [16, -0]], [6, 1], [8, -7]]),
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, True]], [4, [16, 4]], [6, 1], [8, 1]]),
        _with_decisions(MS_TRACE, [[2, [2, 4, 8]], [4, [16, 4, 1]], [6, 1], [8, 1]]),  # other tile lengths
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1, 1, 1]], [4, [16]], [6, 1], [8, [1, 2]]]),
        json.dumps(json.loads(MS_TRACE)),  # spaces after separators
        json.dumps(json.loads(MS_TRACE), indent=1),
        MS_TRACE.replace('"meta_schedule.unroll_explicit"', '"my.own.key"'),  # unknown annotation keys
        MS_TRACE.replace('["meta_schedule.parallel"]', '["x.y"]'),
        MS_TRACE.replace('["meta_schedule.parallel"]', "[]"),
        MS_TRACE.replace('["Annotate",["b0",4]', '["Unannotate",["b0",4]'),
        MS_TRACE.replace('"Fuse"', '"FrobnicateLoops"'),  # unknown kinds, schedule and postproc parts
        MS_TRACE.replace('"GetLoops"', '"GetLoopz"'),
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["v3"],[],[]]'),  # variable used after postproc
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["l17","12",-3,2.5,true,[1]],[[2,[3]]],[]]'),
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["SamplePerfectTile",["l17"],[2,64],["v30","v31"]]'),
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["l17"],[-0.0],[]]'),
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["l17"],[1e300,-1e300],[]]'),
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["l17"],[12345678901234567890123],[]]'),
        MS_TRACE.replace("[[0,16,64,512],[0.25", "[[0,16.5,-64,1e3],[0.25"),  # float candidates
        MS_TRACE.replace("[[0,16,64,512],[0.25", "[[-0.0,16,64,512],[0.25"),
        MS_TRACE.replace("[[0,16,64,512],[0.25,0.25,0.25,0.25]]", "[]"),  # no candidates
        MS_TRACE.replace('"v15"]]', '"v15","v99"]]'),
        MS_TRACE.replace('["Annotate",["b0","v15"]', '["Annotate",["b0","v15","v3","7"]'),
        MS_TRACE.replace('["EnterPostproc",[],[],[]],', ""),  # no postproc part
        MS_TRACE.replace('["GetSBlock",[],["C","main"],["b0"]],', ""),
        STRUCT_TRACE,
        _with_decisions(STRUCT_TRACE, [[3, [1, 1, 1, 1]], [5, [64, 1]], [8, -2]]),
        _with_decisions(STRUCT_TRACE, [[3, [2, 0, 8, 1]], [5, [16, -4]], [8, 0]]),  # factors below 1: unknown extent
        _with_decisions(STRUCT_TRACE, [[3, [2**29, 2**29, 8, 1]], [5, [2**29, 4]], [8, 3]]),  # large products
        _with_decisions(STRUCT_TRACE, [[5, [16, 4]], [3, [2, 4, 8, 1]]]),  # no location decision
        STRUCT_TRACE.replace('"l1","v3","v4"', '"l1","None","v4"'),  # a factor left to inference
        STRUCT_TRACE.replace('"l1","v3","v4"', '"l1",3,"v4"'),  # constant factors
        STRUCT_TRACE.replace('"l1","v3","v4"', '"l1",2.5,"v4"'),
        STRUCT_TRACE.replace('"l1","v3","v4"', '"l1",NaN,"v4"'),
        STRUCT_TRACE.replace('"l1","v3","v4"', '"l1",1e308,"v4"').replace('"l2","v11"', '"l2",1e308'),
        STRUCT_TRACE.replace('["Fuse",["l16","l17"],[1],["l20"]],', ""),  # parallel without a fuse
        STRUCT_TRACE.replace('["Fuse",["l16","l17"]', '["Fuse",["l16","l17","l18","l19","a","b","c"]'),  # more loops than reordered
        STRUCT_TRACE.replace('["Reorder",["l7","l13","l8","l9","l14","l10"],[],[]],', ""),  # no Reorder
        STRUCT_TRACE.replace('["Reorder",["l7","l13"', '["Reorder",[7,"l13"'),
        STRUCT_TRACE.replace('"Reorder",["l7","l13","l8","l9","l14","l10"]', '"Reorder",["l7","l13","l8","l9","l14","l10","l99"]'),
        STRUCT_TRACE.replace('["GetLoops",["b1"],[],["l16","l17","l18","l19"]],', ""),  # first nest gone
        STRUCT_TRACE.replace('"DecomposeReduction"', '"Decompose"'),
        STRUCT_TRACE.replace('["EnterPostproc",[],[],[]],', ""),
        STRUCT_TRACE.replace('["GetSBlock",[],["C","main"],["b0"]],', '["EnterPostproc",[],[],[]],'),  # postproc first
        STRUCT_TRACE.replace('["Split",["l2","v11","v12"],[true,false],["l13","l14"]]', '["Split",["l2","v11","v12"],[true,false],"l13"]'),
    ]
    assert_same(variants)
    assert_same(variants[::-1])
    for v in variants:
        assert_same([v])


ANSOR_VARIANTS = [
    '[["SP",2,0,1024,[2,1,4],1],["PR",2,0,"auto_unroll_max_step$8"],["AN",4,0,3]]',
    '[["SP",2,0],["SP",2,0,"x",[2]],["SP",2,0,0,[0,4],1],["SP",2,0,12.5,[2,-3],1],["SP",2,0,7,[],1]]',
    '[["SP",2,0,64,[true,2],1],["SP",2,0,-64,[2],1],["SP",2,0,64,[[2],[4,[8]]],1],["SP",2,0,64,"oops",1]]',
    '[["PR",2,0,"foo"],["PR",2,0,"auto_unroll_max_step$-3"],["PR",2,0,"mine$4"],["PR"],["PR",1,2,17]]',
    '[["PR",2,0,"auto_unroll_max_step$"],["PR",2,0,"auto_unroll_max_step$1.5"],["PR",2,0,"$$9"]]',
    '[["ZZ",1,[2,[3,[4,5,6,7,8]]]],["RE",3,[0,5,10,15,1,6,11,16,2,7,12,17]],["CA",1,2,3],["CI",5],["FU"]]',
    '[["FSP",3,4,1,2,true,false,null,"s",{"a":1},2.5,-0.0,1e300]]',
    '[["SP",2,0,123456789012345678901234,[2],1],["AN",123456789012345678901234567,0,1]]',
    '[["sp",1],["ansor:SP",2],["", 3]]',
    "[]",
    json.dumps([["SP", 2, 0, 1024, [2, 1, 4], 1], ["AN", 4, 0, 3]], indent=2),
]


def test_ansor_variants():
    assert_same(ANSOR_VARIANTS)
    assert_same(ANSOR_VARIANTS + [MS_TRACE] + ANSOR_VARIANTS[::-1])


@pytest.mark.parametrize("bad", ['[1,2]', '[["SP"],[]]', '[[1,"SP"]]', '[["SP",2],"AN"]', "[[]]"])
def test_ansor_errors_are_the_reference_errors(bad):
    got = _error(encode_programs, [ANSOR_VARIANTS[0], bad])
    assert got == _error(encode_programs_reference, [ANSOR_VARIANTS[0], bad])
    assert got[0] is TraceParseError


def test_nan_and_infinity_literals():
    nan = MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["l17"],[NaN, Infinity, -Infinity],[]]')
    ansor = '[["SP",2,0,NaN,[2,1,4],1],["AN",4,0,Infinity]]'
    with np.errstate(invalid="ignore"):
        got = encode_programs([nan, ansor, MS_TRACE])
        want = encode_programs_reference([nan, ansor, MS_TRACE])
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g, w, equal_nan=True)


def _error(fn, traces):
    with pytest.raises(Exception) as info:
        fn(traces)
    return type(info.value), str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[[1,2",
        MS_TRACE[:-1],
        MS_TRACE + "]",
        MS_TRACE.replace("[[2,[2,4,8,1]]", "[[2,[2,4,8,01]]"),  # leading zero: not JSON
        MS_TRACE.replace("[[2,[2,4,8,1]]", "[[2,[2,4,8,1,]]"),
        '{"a": 1}',
        "17",
        '"text"',
        "",
    ],
)
def test_bad_traces_raise_trace_parse_error_like_reference(bad):
    got = _error(encode_programs, [MS_TRACE, bad, MS_TRACE])
    want = _error(encode_programs_reference, [MS_TRACE, bad, MS_TRACE])
    assert got == want
    assert got[0] is TraceParseError


@pytest.mark.parametrize(
    "bad",
    [
        _with_decisions(MS_TRACE, [[2, [2, 4, 8, 1]], [4, [16, 4]], [6, -5], [8, 1]]),  # categorical below range
        MS_TRACE.replace("[[0,16,64,512],[0.25,0.25,0.25,0.25]]", "[]").replace("[6,2]", "[6,-1]"),
        _with_decisions(MS_TRACE, [[2, 5], [4, [16, 4]], [6, 1], [8, 1]]),  # tile decision not a list
        _with_decisions(MS_TRACE, [[2, [[2, 4], 8, 1]], [4, [16, 4]], [6, 1], [8, 1]]),  # nested tile decision
        MS_TRACE.replace('["GetLoops",["b0"],[],["l1","l2","l3"]]', '["GetLoops",["b0"],[]]'),  # not 4 fields
        MS_TRACE.replace('["Parallel",["l17"],[],[]]', '["Parallel",["l17"],[]]'),
        MS_TRACE.replace('"EnterPostproc"', '"EnterPostproc","x"'),
    ],
)
def test_reference_errors_are_the_reference_errors(bad):
    # the first failing row, in input order, raises what the reference raises
    assert _error(encode_programs, [MS_TRACE, bad, "nope"]) == _error(encode_programs_reference, [MS_TRACE, bad, "nope"])


# -- perturbed decisions of real traces -----------------------------------------------------------


def _perturb(trace: str, rng: random.Random) -> str:
    insts, decisions = json.loads(trace)
    out = []
    for idx, dec in decisions:
        kind = insts[idx][0]
        attrs = insts[idx][2]
        if kind == "SamplePerfectTile":
            dec = [rng.choice([0, 1, 1, 2, 3, 4, 7, 8, 16, 64, 1000]) for _ in dec]
            if rng.random() < 0.05:
                dec = dec + [2]
        elif kind == "SampleCategorical":
            n = len(attrs[0]) if attrs else 0
            dec = rng.randint(-n, n + 2)
        elif kind == "SampleComputeLocation":
            dec = rng.randint(-2, 6)
        out.append([idx, dec])
    if rng.random() < 0.1 and out:
        out.pop(rng.randrange(len(out)))
    return _with_decisions(trace, out)


def test_perturbed_decisions_of_real_traces():
    rng = random.Random(0)
    base = []
    for path in PLATFORM_FILES:
        traces = _traces(path)
        base += rng.sample(traces, min(60, len(traces)))
    perturbed = [_perturb(t, rng) for t in base for _ in range(3)]
    rng.shuffle(perturbed)
    assert_same(base + perturbed)


_BASE = [t for path in PLATFORM_FILES[:3] for t in _traces(path)[:40]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), picks=st.lists(st.integers(0, len(_BASE) - 1), min_size=1, max_size=12))
def test_hypothesis_perturbed_batches(seed, picks):
    rng = random.Random(seed)
    batch = [_perturb(_BASE[i], rng) if rng.random() < 0.8 else _BASE[i] for i in picks]
    assert_same(batch)
