"""Fast batch program encoder: `encode_programs` returns exactly what
`program.encode_programs_reference` returns, at a fraction of the cost (issue 26 item 2).

How: a MetaSchedule trace `[[instructions...],[[inst, decision], ...]]` is split as *text* into
its schedule part (the instructions before `EnterPostproc`), its postproc part and its decisions.
Programs of one task share a few schedule parts and differ only in the decisions, so each
distinct (schedule text, decision layout) is compiled once into a plan: a symbolic run of the
reference tokenizer in which every decision number is a column reference. Rows of one plan are then
evaluated together with NumPy (token numbers, decision features, summaries). The postproc part only
holds constant tokens; it is compiled once per distinct text (from a cache of instruction texts).
Per row only the decisions text is scanned (str.translate / split, validated by orjson). Counts,
token count and the largest annotation value are read off the final tokens at once.

Everything else (unusual JSON, decisions out of range or beyond 2**30, constants that are NaN,
infinite or -0.0, variables used after EnterPostproc, ...) goes through the reference code for
that row, parsed with orjson where orjson is known to give json's objects. Ansor step lists
(TenSet) take that path too, with a tokenizer that emits compact rows directly (same numbers as
`_tokenize_ansor`). Results are identical to the reference, errors included (the first failing
row in input order raises). Python's cyclic GC is paused during a call (restored after).
"""

from __future__ import annotations

import gc
import json
import math
import re
import struct
from typing import Sequence

import numpy as np

from tensorcost.features import program as P
from tensorcost.features.program import (
    ANN_INDEX, ANN_KEYS, COMPACT_DIM, FLAT_PROGRAM_DIM, KIND_INDEX, NUM_SLOTS, TILED_LEVELS, VOCAB,
    TraceParseError,
)

try:  # pragma: no cover - orjson is an optional speed-up
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = ["encode_programs"]

_N_KINDS = len(VOCAB)
_N_ANN = len(ANN_KEYS)
_NONE_ANN = ANN_INDEX["<none>"]
_N_DEC = len(P.DECISION_FEATURE_NAMES)
_N_LOOP = len(P.LOOP_FEATURE_NAMES)
# column offsets in the flat vector
_C_DEC = _N_KINDS + _N_ANN
_C_LOOP = _C_DEC + _N_DEC
_C_SUM = _C_LOOP + _N_LOOP
_C_STRUCT = _C_SUM + 5
assert _C_STRUCT + len(P.STRUCTURE_FEATURE_NAMES) == FLAT_PROGRAM_DIM

# The decisions text of a row: valid JSON (checked) whose layout (the text without digits and
# '-') equals the plan's, so it holds the same lists with integers in the same places; anything
# else (floats, literals) changes the layout and misses the plan. Values beyond 2**30 are left to
# the reference.
_SKEL = str.maketrans("", "", "0123456789-")
_SEP = str.maketrans("[],", "   ")
_LAYOUT_OK = re.compile(r"[\[\],\s]*\Z")
_MAX_VALUE = 2**30
_POST_MARK = ',["EnterPostproc"'

_MAX_CACHE = 20_000
_PACK_ROW = struct.Struct(f"={COMPACT_DIM}f").pack


class _NoPlan(Exception):
    pass


class _Sym:
    """A decision number (column `col` of the row's value matrix) during plan compilation."""

    __slots__ = ("col",)

    def __init__(self, col: int):
        self.col = col


def _through_distinct(x: np.ndarray, f) -> np.ndarray:
    """The scalar `f` (math.log2 inside: bit-exact with the reference) applied elementwise,
    once per distinct value."""
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.float64)
    u, inv = np.unique(x, return_inverse=True)
    return np.array([f(v) for v in u.tolist()], dtype=np.float64)[inv].reshape(x.shape)


def _slog2_table(x: np.ndarray) -> np.ndarray:
    return _through_distinct(x, P.slog2)


def _log2f_table(x: np.ndarray) -> np.ndarray:
    return _through_distinct(x, P._log2f)


def _const_ok(x: float) -> bool:
    # NaN, infinities and -0.0 make max() / the 'no annotation' default ambiguous; leave those
    # rows to the reference
    return math.isfinite(x) and not (x == 0.0 and math.copysign(1.0, x) < 0)


def _const_slog2_f32(x: float) -> np.float32:
    return np.float32(P.slog2(x))


class _Plan:
    """Compiled schedule part for one (schedule text, decision layout)."""

    def __init__(self, insts: list, dec_obj: list, n_values: int):
        self.n_values = n_values
        # symbolic decisions: replace the int leaves, in text order, by _Sym columns
        counter = [0]

        def sym(v):
            if isinstance(v, list):
                return [sym(x) for x in v]
            if type(v) is not int:
                raise _NoPlan
            s = _Sym(counter[0])
            counter[0] += 1
            return s

        sdec = sym(dec_obj)
        if counter[0] != n_values:
            raise _NoPlan
        idx_cols, idx_vals = [], []
        dec_by_inst = {}
        for entry in sdec:
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], _Sym):
                raise _NoPlan
            i, d = entry
            idx_cols.append(i.col)
            idx_vals.append(int(dec_obj[len(idx_cols) - 1][0]))
            dec_by_inst[idx_vals[-1]] = d
        if any(k < 0 or k >= len(insts) for k in dec_by_inst):
            raise _NoPlan
        self.idx_cols = np.array(idx_cols, dtype=np.int64)
        self.idx_vals = np.array(idx_vals, dtype=np.int64)

        # categorical derived columns are appended after the n_values decision columns
        cats: list[tuple[int, np.ndarray]] = []  # (decision column, candidates float64)
        var_value: dict = {}
        n_tok = len(insts)
        T = np.zeros((n_tok, COMPACT_DIM), dtype=np.float32)
        var_slots: list[tuple[int, int, int]] = []  # (token, slot, x column)
        decision_values: list[int] = []
        tiles: list[list[int]] = []
        categoricals: list[int] = []
        locations: list[int] = []
        walk = P.StructureWalk()  # the reference's walk, over column references

        def flat(d) -> list[int]:
            if isinstance(d, _Sym):
                return [d.col]
            out = []
            for x in d:
                out.extend(flat(x))
            return out

        for idx, inst in enumerate(insts):
            if not isinstance(inst, list) or len(inst) != 4:
                raise _NoPlan
            kind, inputs, attrs, outputs = inst
            walk.step(kind, inputs, outputs, var_value)
            numbers: list = []  # float constants or ("x", column)
            ann_key = None
            decision = dec_by_inst.get(idx)
            if kind == "SamplePerfectTile" and decision is not None:
                if not isinstance(decision, list) or any(not isinstance(x, _Sym) for x in decision):
                    raise _NoPlan
                cols = [x.col for x in decision]
                numbers = [("x", c) for c in cols]
                for name, c in zip(outputs, cols):
                    var_value[name] = ("x", c)
                decision_values.extend(cols)
                tiles.append(cols)
            elif kind == "SampleCategorical" and decision is not None:
                if not isinstance(decision, _Sym):
                    raise _NoPlan
                candidates = attrs[0] if attrs else []
                if not isinstance(candidates, list):
                    raise _NoPlan
                cand = []
                for c in candidates:
                    if type(c) not in (int, float):
                        raise _NoPlan
                    c = float(c)
                    if not _const_ok(c):
                        raise _NoPlan
                    cand.append(c)
                xcol = n_values + len(cats)
                cats.append((decision.col, np.array(cand, dtype=np.float64)))
                numbers = [("x", xcol), ("x", decision.col), float(len(candidates))]
                if outputs:
                    var_value[outputs[0]] = ("x", xcol)
                decision_values.append(xcol)
                categoricals.append(xcol)
            else:
                if decision is not None:
                    cols = flat([decision])
                    numbers.extend(("x", c) for c in cols)
                    decision_values.extend(cols)
                    if kind == "SampleComputeLocation":
                        locations.extend(cols)
                if kind in ("Annotate", "Unannotate"):
                    ann_key = str(attrs[0]) if attrs else "<other>"
                for v in inputs:
                    if isinstance(v, str) and v in var_value:
                        numbers.append(var_value[v])
                    elif isinstance(v, (int, float)) and not isinstance(v, bool):
                        numbers.append(float(v))
                    elif isinstance(v, str) and v.lstrip("-").isdigit():
                        numbers.append(float(v))
                if kind not in ("Annotate", "Unannotate"):
                    numbers.extend(P._numbers(attrs))
                if not numbers:
                    numbers = [float(len(outputs))]
            T[idx, 0] = KIND_INDEX.get(kind, 0)
            T[idx, 1] = _NONE_ANN if ann_key is None else ANN_INDEX.get(ann_key, ANN_INDEX["<other>"])
            for s, x in enumerate(numbers[:NUM_SLOTS]):
                if isinstance(x, tuple):
                    var_slots.append((idx, s, x[1]))
                else:
                    if not _const_ok(x):
                        raise _NoPlan
                    T[idx, 2 + s] = _const_slog2_f32(x)

        self.var_names = frozenset(k for k in var_value if isinstance(k, str))
        self.n_tok = n_tok
        self.T = T
        self.cats = cats
        self.n_x = n_values + len(cats)
        if var_slots:
            vs = np.array(var_slots, dtype=np.int64)
            self.vs_tok, self.vs_slot, self.vs_col = vs[:, 0], vs[:, 1] + 2, vs[:, 2]
        else:
            self.vs_tok = self.vs_slot = self.vs_col = np.zeros(0, dtype=np.int64)
        self.decision_values = decision_values
        self.tiled = [t for t in tiles if len(t) >= 3]
        self.split2 = [t for t in tiles if len(t) == 2]
        self.categoricals = categoricals
        self.locations = locations
        if walk.blocks is not None:  # EnterPostproc inside the schedule text: the reference walks it
            raise _NoPlan
        self.reorder_src = walk.reorder_factors()  # None | [float | ("x", column) | None]


_insts: dict = {}  # instruction body text -> (compact row, names, (kind, n inputs, n outputs)) | None


def _const_inst(body: str):
    """Compact token row of one instruction `[` body `]]` without decision and variable inputs
    (None where it does not qualify), the names among its string inputs, and (kind, number of
    inputs, number of outputs) for the structure walk."""
    try:
        inst = _loads_exact("[" + body + "]]")
        if not isinstance(inst, list) or len(inst) != 4:
            return None
        kind, inputs, attrs, outputs = inst
        if kind in ("SamplePerfectTile", "SampleCategorical"):
            return None  # could define variables
        numbers: list[float] = []
        names = []
        ann_key = None
        if kind in ("Annotate", "Unannotate"):
            ann_key = str(attrs[0]) if attrs else "<other>"
        for v in inputs:
            if isinstance(v, str):
                names.append(v)
                if v.lstrip("-").isdigit():
                    numbers.append(float(v))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                numbers.append(float(v))
        if kind not in ("Annotate", "Unannotate"):
            numbers.extend(P._numbers(attrs))
        if not numbers:
            numbers = [float(len(outputs))]
        row = [float(KIND_INDEX.get(kind, 0)),
               float(_NONE_ANN if ann_key is None else ANN_INDEX.get(ann_key, ANN_INDEX["<other>"]))]
        for x in numbers[:NUM_SLOTS]:
            if not _const_ok(x):
                return None
            row.append(float(_const_slog2_f32(x)))
        row.extend([0.0] * (COMPACT_DIM - len(row)))
        return _PACK_ROW(*row), frozenset(names), (kind, P._size(inputs), P._size(outputs))  # values already float32-exact
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError):
        return None


class _Post:
    """Compiled postproc part: constant tokens only, and what the postprocessor fused
    (`StructureWalk.postproc_fuses`)."""

    def __init__(self, post: str):
        bodies = post[1:-2].split("]],[")
        get = _insts.get
        entries = [get(b, 0) for b in bodies]
        for k, r in enumerate(entries):
            if r == 0:
                r = entries[k] = _insts[bodies[k]] = _const_inst(bodies[k])
            if r is None:
                raise _NoPlan
        self.T = np.frombuffer(b"".join([r[0] for r in entries]), dtype=np.float32).reshape(len(entries), COMPACT_DIM)
        self.n_tok = len(entries)
        self.names = frozenset().union(*[r[1] for r in entries])
        walk = P.StructureWalk(in_postproc=True)  # the text starts with EnterPostproc
        for kind, n_in, n_out in (r[2] for r in entries):
            walk.postproc_step(kind, n_in, n_out)
        self.fuses = walk.postproc_fuses()


_plans: dict = {}  # schedule text -> {layout: _Plan | None}
_posts: dict = {}  # postproc text -> _Post | None


def clear_caches() -> None:
    """Forget every cached plan, postproc and instruction (what a fresh process starts from)."""
    _plans.clear()
    _posts.clear()
    _insts.clear()


def _split(trace: str):
    """(schedule text, postproc text, decisions text) or None. schedule/postproc are the
    comma-joined instruction texts; the trace is '[[' sched (',' post)? '],' decisions ']'."""
    if not isinstance(trace, str) or len(trace) < 8 or trace[0] != "[" or trace[1] != "[" or trace[-1] != "]":
        return None
    q = trace.rfind('"')
    p = trace.rfind("[[", q)
    if p < 0 or trace[p - 2:p] != "],":
        return None
    k = trace.find(_POST_MARK, 0, p)
    if k < 0:
        return trace[2:p - 2], "", trace[p:-1]
    return trace[2:k], trace[k + 1:p - 2], trace[p:-1]


def _get_plan(sched: str, layout: str, dec_text: str, n_values: int):
    by_layout = _plans.get(sched)
    if by_layout is None:
        if len(_plans) > _MAX_CACHE:
            _plans.clear()
        by_layout = _plans[sched] = {}
    if layout in by_layout:
        return by_layout[layout]
    plan = None
    try:
        if _LAYOUT_OK.match(layout) and sched:
            insts = json.loads("[" + sched + "]")
            dec_obj = json.loads(dec_text)
            if insts and isinstance(dec_obj, list) and isinstance(insts[0], list) and len(insts[0]) == 4 \
                    and isinstance(insts[0][1], list):
                plan = _Plan(insts, dec_obj, n_values)
    except (_NoPlan, ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError):
        plan = None
    by_layout[layout] = plan
    return plan


def _get_post(post: str):
    if post in _posts:
        return _posts[post]
    res = None
    if len(post) >= 4 and post[0] == "[" and post[-2:] == "]]":
        try:
            res = _Post(post)
        except _NoPlan:
            res = None
    if len(_posts) > _MAX_CACHE:
        _posts.clear()
    if len(_insts) > _MAX_CACHE:
        _insts.clear()
    _posts[post] = res
    return res


# orjson parses what json parses into the same objects, except integers beyond 64 bits (a float
# then): texts with 16 or more digits in a row go to json. Texts orjson rejects (NaN, Infinity,
# lone surrogates, ...) go to json as well.
_SAFE_JSON = re.compile(r"[0-9]{16}")


def _loads(trace):
    """json.loads semantics; orjson where it provably gives the same objects."""
    if _orjson is not None and isinstance(trace, str) and _SAFE_JSON.search(trace) is None:
        try:
            return _orjson.loads(trace)
        except ValueError:
            pass
    try:
        return json.loads(trace)
    except json.JSONDecodeError as exc:
        raise TraceParseError(f"trace is not JSON: {exc}") from None


def _loads_exact(text: str):
    """json.loads(text) (ValueError when not JSON), through orjson where it gives the same."""
    if _orjson is not None and _SAFE_JSON.search(text) is None:
        try:
            return _orjson.loads(text)
        except ValueError:
            pass
    return json.loads(text)


_OTHER_ANN = ANN_INDEX["<other>"]
_ANSOR_KIND = {k: KIND_INDEX.get(f"ansor:{k}", 0) for k in P.ANSOR_KINDS}


_SLOG2_MEMO: dict = {}
_ZEROS = [0.0] * NUM_SLOTS


def _first_numbers(values: list, start: int, k: int) -> list[float]:
    """program._numbers(values[start:])[:k], without flattening past the k-th number."""
    out: list[float] = []
    for j in range(start, len(values)):
        v = values[j]
        if isinstance(v, (int, float)):  # bool included, as in _numbers
            out.append(float(v))
        elif isinstance(v, list):
            out.extend(_first_numbers(v, 0, k - len(out)))
        else:
            continue
        if len(out) >= k:
            return out[:k]
    return out


def _ansor_compact(steps: list):
    """program._tokenize_ansor, emitting compact token rows directly: (compact (n, 8) float32,
    Decisions). Same numbers, same order, same errors."""
    kinds: list[int] = []
    anns: list[int] = []
    slots: list[float] = []
    memo = _SLOG2_MEMO
    slog2 = P.slog2
    decision_values: list[float] = []
    tiles: list[list[float]] = []
    categoricals: list[float] = []
    numbers_of = P._numbers
    for idx, step in enumerate(steps):
        if not isinstance(step, list) or not step or not isinstance(step[0], str):
            raise TraceParseError(f"step {idx}: expected [kind, ...], got {step!r:.80}")
        kind = step[0]
        ann = _NONE_ANN
        if kind == "SP":  # [SP, stage, iter, extent, lengths, inner_to_outer]
            extent = step[3] if len(step) > 3 and isinstance(step[3], (int, float)) else 0
            lengths = numbers_of(step[4]) if len(step) > 4 and isinstance(step[4], list) else []
            numbers = [float(extent or 0)] + lengths
            decision_values.extend(lengths)
            inner = math.prod(lengths) if lengths else 1.0
            outer = float(extent) / inner if extent and inner > 0 else 1.0
            tiles.append([max(outer, 1.0)] + lengths)
        elif kind == "PR":  # [PR, stage, iter, "auto_unroll_max_step$64"]
            pragma = str(step[3]) if len(step) > 3 else ""
            key, _, val = pragma.partition("$")
            ann = ANN_INDEX.get(f"ansor:{key}", _OTHER_ANN)
            numbers = [float(val)] if val.lstrip("-").isdigit() else []
            decision_values.extend(numbers)
            categoricals.extend(numbers)
        else:
            numbers = _first_numbers(step, 1, NUM_SLOTS)
        k = _ANSOR_KIND.get(kind)
        kinds.append(k if k is not None else KIND_INDEX.get(f"ansor:{kind}", 0))
        anns.append(ann)
        numbers = numbers[:NUM_SLOTS]
        for x in numbers:
            v = memo.get(x)
            if v is None:
                v = slog2(x)
                if x == x and x != 0.0:  # -0.0 == 0.0 and NaN != NaN: not memoized
                    memo[x] = v
            slots.append(v)
        slots.extend(_ZEROS[len(numbers):])
    n = len(kinds)
    compact = np.empty((n, COMPACT_DIM), dtype=np.float32)
    compact[:, 0] = kinds
    compact[:, 1] = anns
    compact[:, 2:] = np.array(slots, dtype=np.float64).reshape(n, NUM_SLOTS)
    if len(_SLOG2_MEMO) > _MAX_CACHE:
        _SLOG2_MEMO.clear()
    return compact, P.Decisions(decision_values, tiles, categoricals)


def _flat_from_compact(compact: np.ndarray, decisions) -> list[float]:
    """program.flat_program_features computed from the compact tokens (same values)."""
    if len(compact):
        kind_counts = np.bincount(compact[:, 0].astype(np.int64), minlength=_N_KINDS).astype(np.float64)
        anns = compact[:, 1].astype(np.int64)
        ann_counts = np.bincount(anns, minlength=_N_ANN).astype(np.float64)
        ann_counts[_NONE_ANN] = 0.0
        ann_rows = anns != _NONE_ANN
        max_ann_val = float(compact[ann_rows, 2].max()) if ann_rows.any() else 0.0
    else:
        kind_counts = np.zeros(_N_KINDS)
        ann_counts = np.zeros(_N_ANN)
        max_ann_val = 0.0
    slog2 = P.slog2
    logs = [slog2(d) for d in decisions] or [0.0]
    summary = [float(len(compact)), float(len(decisions)), float(sum(logs)), float(max(logs)), max_ann_val]
    return (kind_counts.tolist() + ann_counts.tolist() + P.decision_features(decisions) + P.loop_features(decisions) + summary
            + list(P.STRUCTURE_ABSENT))  # an Ansor step list: no MetaSchedule structure


def _reference_row(trace):
    """The reference for one trace: (flat features list, compact tokens)."""
    obj = _loads(trace)
    if (
        isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], list) and isinstance(obj[1], list)
        and (not obj[0] or (isinstance(obj[0][0], list) and len(obj[0][0]) == 4 and isinstance(obj[0][0][1], list)))
        and all(isinstance(d, list) and len(d) == 2 for d in obj[1])
    ):
        tokens, decisions = P._tokenize_metaschedule(obj[0], obj[1])
    elif isinstance(obj, list):
        compact, decisions = _ansor_compact(obj)
        return _flat_from_compact(compact, decisions), compact
    else:
        raise TraceParseError(f"trace must be a JSON list, got {type(obj).__name__}")
    mat = np.asarray(tokens, dtype=np.float32).reshape(len(tokens), P.TOKEN_DIM)
    return P.flat_program_features(mat, decisions), P.compact_tokens(mat)


def _seq_sum(cols: list[np.ndarray], g: int) -> np.ndarray:
    acc = np.zeros(g, dtype=np.float64)
    for c in cols:
        acc = acc + c
    return acc


def _eval_plan(plan: _Plan, V: np.ndarray, fuses: list):
    """Vectorized plan evaluation for g rows (`fuses`: each row's postproc part's
    `postproc_fuses`). Returns (ok mask, tokens (g, n_tok, 8) float32, flat features (g,
    FLAT_PROGRAM_DIM): the decision features, decision summaries and structure only; the counts,
    the token count and the annotation maximum are read off the final tokens)."""
    g = len(V)
    ok = np.ones(g, dtype=bool)
    if plan.n_values:
        ok &= (np.abs(V) < _MAX_VALUE).all(axis=1)
    if len(plan.idx_cols):
        ok &= (V[:, plan.idx_cols] == plan.idx_vals).all(axis=1)
    X = np.empty((g, plan.n_x), dtype=np.float64)
    X[:, :plan.n_values] = V
    for k, (col, cand) in enumerate(plan.cats):
        d = V[:, col]
        L = len(cand)
        ok &= d >= -L if L else d >= 0
        if L:
            X[:, plan.n_values + k] = np.where(d < L, cand[np.mod(d, L)], d.astype(np.float64))
        else:
            X[:, plan.n_values + k] = d
    S = _slog2_table(X)
    toks = np.broadcast_to(plan.T, (g,) + plan.T.shape).copy()
    if len(plan.vs_col):
        toks[:, plan.vs_tok, plan.vs_slot] = S[:, plan.vs_col].astype(np.float32)
    feats = np.zeros((g, FLAT_PROGRAM_DIM), dtype=np.float64)

    # decision features (program.decision_features), same summation order
    L2 = _log2f_table(X) if (plan.tiled or plan.split2) else None
    zeros = np.zeros(g)
    nlev = len(TILED_LEVELS)
    if plan.tiled:
        level_rows = []
        for t in plan.tiled:
            logs = [L2[:, c] for c in t]
            second = logs[1] if len(logs) >= 4 else zeros
            middle = _seq_sum(logs[2:-2], g)
            level_rows.append([logs[0], second, middle, logs[-2], logs[-1]])
        level_sums = [level_rows[0][j] for j in range(nlev)]
        for r in level_rows[1:]:
            level_sums = [level_sums[j] + r[j] for j in range(nlev)]
        extent = level_sums[0]
        for j in range(1, nlev):
            extent = extent + level_sums[j]
        pos = extent > 0
        safe = np.where(pos, extent, 1.0)
        shares = [np.where(pos, ls / safe, 0.0) for ls in level_sums]
        inner_last = level_rows[-1][-1]
        inner_max = level_rows[0][-1]
        for r in level_rows[1:]:
            inner_max = np.maximum(inner_max, r[-1])
    else:
        level_rows = []
        level_sums = [zeros] * nlev
        extent = zeros
        shares = [zeros] * nlev
        inner_last = inner_max = zeros
    if plan.split2:
        s2o, s2i = L2[:, plan.split2[0][0]], L2[:, plan.split2[0][1]]
        for t in plan.split2[1:]:
            s2o = s2o + L2[:, t[0]]
            s2i = s2i + L2[:, t[1]]
        s2_extent = s2o + s2i
        pos = s2_extent > 0
        safe = np.where(pos, s2_extent, 1.0)
        s2_so = np.where(pos, s2o / safe, 0.0)
        s2_si = np.where(pos, s2i / safe, 0.0)
    else:
        s2o = s2i = s2_extent = s2_so = s2_si = zeros
    c = _C_DEC
    feats[:, c] = float(len(plan.tiled))
    feats[:, c + 1] = extent
    for j in range(nlev):
        feats[:, c + 2 + j] = level_sums[j]
        feats[:, c + 2 + nlev + j] = shares[j]
    c += 2 + 2 * nlev
    feats[:, c] = inner_last
    feats[:, c + 1] = inner_max
    feats[:, c + 2] = float(len(plan.split2))
    feats[:, c + 3] = s2_extent
    feats[:, c + 4] = s2o
    feats[:, c + 5] = s2i
    feats[:, c + 6] = s2_so
    feats[:, c + 7] = s2_si
    feats[:, c + 8] = level_sums[-1] + s2i
    c += 9
    cats = [S[:, k] for k in plan.categoricals]
    feats[:, c] = float(len(cats))
    if cats:
        m = cats[0]
        for x in cats[1:]:
            m = np.maximum(m, x)
        feats[:, c + 1] = m
        feats[:, c + 2] = _seq_sum(cats, g)
    c += 3
    locs = X[:, plan.locations] if plan.locations else np.zeros((g, 0))
    feats[:, c] = float(len(plan.locations))
    feats[:, c + 1] = (locs == -2).sum(axis=1)
    feats[:, c + 2] = (locs == -1).sum(axis=1)
    mask = locs >= 0
    cnt = mask.sum(axis=1)
    tot = np.where(mask, locs, 0.0).sum(axis=1)  # integers < 2**30: exact in any order
    feats[:, c + 3] = np.where(cnt > 0, tot / np.maximum(cnt, 1), -1.0)
    assert c + 4 == _C_LOOP
    _loop_columns(plan, L2, level_rows, feats, g)
    # summary (n tokens and ann max are completed with the postproc part)
    logs = [S[:, k] for k in plan.decision_values]
    feats[:, _C_SUM + 1] = float(len(logs))
    if logs:
        feats[:, _C_SUM + 2] = _seq_sum(logs, g)
        m = logs[0]
        for x in logs[1:]:
            m = np.maximum(m, x)
        feats[:, _C_SUM + 3] = m
    _structure_columns(plan, X, fuses, feats)
    return ok, toks, feats


def _log_extent_rows(X: np.ndarray, counts: np.ndarray, sources_of) -> np.ndarray:
    """program._log_extent of each row's factors: `counts` holds each row's fused loop count (-1:
    none), `sources_of(count)` the factors' sources (floats and column references) or None. Each
    count's rows multiply in the reference's order; one log2 pass over the column."""
    g = len(X)
    e = np.ones(g)
    valid = np.zeros(g, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite product reads unknown, as in the reference
        for k in np.unique(counts).tolist():
            sources = sources_of(k) if k >= 0 else None
            if sources is None or any(s is None for s in sources):
                continue
            rows = np.flatnonzero(counts == k)
            ek = np.ones(len(rows))
            vk = np.ones(len(rows), dtype=bool)
            for s in sources:
                v = X[rows, s[1]] if isinstance(s, tuple) else s
                vk &= v >= 1
                ek = ek * v
            vk &= np.isfinite(ek)
            e[rows] = np.where(vk, ek, 1.0)
            valid[rows] = vk
    return np.where(valid, _through_distinct(e, math.log2), P.UNKNOWN_EXTENT)


def _structure_columns(plan: _Plan, X: np.ndarray, fuses: list, feats: np.ndarray) -> None:
    """program.structure_features, column-wise."""
    c = _C_STRUCT
    for j in range(P.STRUCTURE_LOCATIONS):
        feats[:, c + j] = X[:, plan.locations[j]] if j < len(plan.locations) else P.NO_LOCATION
    c += P.STRUCTURE_LOCATIONS
    src = plan.reorder_src
    if src is None or not len(X):
        feats[:, c] = feats[:, c + 1] = P.UNKNOWN_EXTENT
        return
    n = len(src)
    g = len(X)
    ks = np.fromiter((-1 if f is None else f[0] for f in fuses), dtype=np.int64, count=g)
    ms = np.fromiter((-1 if f is None else f[1] for f in fuses), dtype=np.int64, count=g)
    feats[:, c] = _log_extent_rows(X, ks, lambda k: src[:k] if k <= n else None)
    feats[:, c + 1] = _log_extent_rows(X, ms, lambda m: src[n - m:] if m <= n else None)


def _loop_columns(plan: _Plan, L2, level_rows: list, feats: np.ndarray, g: int) -> None:
    """program.loop_features, column-wise, in the same summation order; `level_rows`: each tiled
    loop's TILED_LEVELS columns, as the decision features computed them."""
    n_parts = len(P._TILED_LOOP_PARTS)
    n_in = P._INNER_LEVELS
    zeros = np.zeros(g)
    parts_of = []
    for t, levels in zip(plan.tiled, level_rows):
        logs = [L2[:, c] for c in t]
        extent = levels[0]
        for x in levels[1:]:
            extent = extent + x
        inner = [logs[-1]]
        for q in range(2, n_in + 1):
            inner.append(inner[-1] + logs[-q] if q <= len(logs) else inner[-1])
        parts_of.append(levels + [extent] + inner)
    c = _C_LOOP
    for j in range(min(P.LOOP_TILED_SLOTS, len(parts_of))):
        for k, col in enumerate(parts_of[-1 - j]):
            feats[:, c + j * n_parts + k] = col
    c += P.LOOP_TILED_SLOTS * n_parts
    for j in range(min(P.LOOP_SPLIT2_SLOTS, len(plan.split2))):
        t = plan.split2[-1 - j]
        o, i = L2[:, t[0]], L2[:, t[1]]
        feats[:, c + 3 * j] = o
        feats[:, c + 3 * j + 1] = i
        feats[:, c + 3 * j + 2] = o + i
    c += P.LOOP_SPLIT2_SLOTS * 3
    first_in = len(TILED_LEVELS) + 1
    for q in range(2, n_in + 1):
        v = zeros
        for parts in parts_of:
            v = v + parts[first_in + q - 1]
        feats[:, c + q - 2] = v
    assert c + n_in - 1 == _C_SUM


def encode_programs(traces: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same result as `program.encode_programs_reference(traces)`: (program features
    (n, FLAT_PROGRAM_DIM) float64, token offsets (n + 1,) int64, compact tokens (T, COMPACT_DIM)
    float32), computed in batches."""
    was_enabled = gc.isenabled()
    gc.disable()  # the parse creates many short-lived containers; collections only cost time
    try:
        return _encode(traces)
    finally:
        if was_enabled:
            gc.enable()


def _encode(traces: Sequence[str]):
    n = len(traces)
    feats = np.zeros((n, FLAT_PROGRAM_DIM), dtype=np.float64)
    n_tok = np.zeros(n, dtype=np.int64)
    groups: dict[int, tuple[_Plan, list, list, list]] = {}  # id(plan) -> (plan, rows, values, posts)
    slow: list[int] = []
    fast = np.zeros(n, dtype=bool)
    skel_tbl, sep_tbl = _SKEL, _SEP
    loads = _orjson.loads if _orjson is not None else json.loads
    plans_get = _plans.get
    posts_get = _posts.get
    for i, tr in enumerate(traces):
        parts = _split(tr)
        if parts is None:
            slow.append(i)
            continue
        sched, post, dec = parts
        layout = dec.translate(skel_tbl)
        try:
            loads(dec)  # the decisions must be valid JSON; the layout fixes the rest
        except ValueError:
            slow.append(i)
            continue
        vals = dec.translate(sep_tbl).split()
        by_layout = plans_get(sched)
        plan = by_layout.get(layout, 0) if by_layout is not None else 0
        if plan == 0:
            plan = _get_plan(sched, layout, dec, len(vals))
        if plan is None:
            slow.append(i)
            continue
        if post:
            pinfo = posts_get(post, 0)
            if pinfo == 0:
                pinfo = _get_post(post)
            if pinfo is None or not pinfo.names.isdisjoint(plan.var_names):
                slow.append(i)
                continue
        else:
            pinfo = None
        grp = groups.get(id(plan))
        if grp is None:
            grp = groups[id(plan)] = (plan, [], [], [])
        grp[1].append(i)
        grp[2].append(vals)
        grp[3].append(pinfo)

    # evaluate the plans; rows a plan rejects (index or categorical checks) go to the reference
    evaluated = []
    for plan, rows, values, pinfos in groups.values():
        if plan.n_values:
            try:
                V = np.array(values, dtype=np.int64).reshape(len(rows), plan.n_values)
            except (ValueError, OverflowError):
                slow.extend(rows)
                continue
        else:
            V = np.zeros((len(rows), 0), dtype=np.int64)
        ok, toks, f = _eval_plan(plan, V, [None if p is None else p.fuses for p in pinfos])
        rows_a = np.array(rows, dtype=np.int64)
        post_n = np.array([0 if p is None else p.n_tok for p in pinfos], dtype=np.int64)
        if not ok.all():
            slow.extend(rows_a[~ok].tolist())
        feats[rows_a[ok]] = f[ok]
        n_tok[rows_a[ok]] = plan.n_tok + post_n[ok]
        fast[rows_a[ok]] = True
        evaluated.append((plan, rows_a, ok, toks, pinfos))

    slow.sort()
    slow_toks = {}
    for i in slow:
        fr, ct = _reference_row(traces[i])
        feats[i] = fr
        n_tok[i] = len(ct)
        slow_toks[i] = ct

    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_tok, out=offsets[1:])
    out = np.empty((int(offsets[-1]), COMPACT_DIM), dtype=np.float32)
    for plan, rows_a, ok, toks, pinfos in evaluated:
        m = plan.n_tok
        if ok.all():
            idx = (offsets[rows_a][:, None] + np.arange(m)).ravel()
            out[idx] = toks.reshape(-1, COMPACT_DIM)
        else:
            sel = np.nonzero(ok)[0]
            idx = (offsets[rows_a[sel]][:, None] + np.arange(m)).ravel()
            out[idx] = toks[sel].reshape(-1, COMPACT_DIM)
        for j, (r, p) in enumerate(zip(rows_a.tolist(), pinfos)):
            if p is not None and ok[j]:
                s = offsets[r] + m
                out[s:s + p.n_tok] = p.T
    for i, ct in slow_toks.items():
        out[offsets[i]:offsets[i + 1]] = ct

    # primitive counts, annotation counts, token count and the largest annotation value of the
    # fast rows, from their tokens (integers and a max: exact in any order)
    if fast.any() and len(out):
        row_of = np.repeat(np.arange(n), n_tok)
        kinds = out[:, 0].astype(np.int64)
        anns = out[:, 1].astype(np.int64)
        kc = np.bincount(row_of * _N_KINDS + kinds, minlength=n * _N_KINDS).reshape(n, _N_KINDS)
        ac = np.bincount(row_of * _N_ANN + anns, minlength=n * _N_ANN).reshape(n, _N_ANN)
        ac[:, _NONE_ANN] = 0
        vals = np.where(anns != _NONE_ANN, out[:, 2], np.float32(-np.inf))
        amax = np.full(n, -np.inf, dtype=np.float32)
        nz = np.nonzero(n_tok > 0)[0]
        amax[nz] = np.maximum.reduceat(vals, offsets[nz])
        amax = np.where(np.isneginf(amax), 0.0, amax.astype(np.float64))
        feats[fast, :_N_KINDS] = kc[fast]
        feats[fast, _N_KINDS:_C_DEC] = ac[fast]
        feats[fast, _C_SUM] = n_tok[fast]
        feats[fast, _C_SUM + 4] = amax[fast]
    return feats, offsets, out
