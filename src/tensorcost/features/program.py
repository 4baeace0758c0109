"""Program features: schedule-primitive tokens and the flat program vector. Pure Python + NumPy.

Traces arrive as JSON text, so the same code featurizes records from our collector, TenSet files
and live MetaSchedule candidates inside tuning.

Token (one per schedule primitive, in the spirit of TLP): one-hot primitive kind, one-hot
annotation key, and NUM_SLOTS numeric arguments (sampling decisions, resolved split factors,
annotation values, attributes) in signed log2 scale.
"""

from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np

MS_KINDS = (
    "GetSBlock", "GetLoops", "GetChildBlocks", "GetProducers", "GetConsumers",
    "SamplePerfectTile", "SamplePartitionedTile", "SampleCategorical", "SampleComputeLocation",
    "Split", "LoopPartition", "Fuse", "Merge", "Reorder", "AddUnitLoop",
    "Parallel", "Vectorize", "Unroll", "Bind",
    "Annotate", "Unannotate",
    "CacheRead", "CacheWrite", "CacheInplace", "ReIndex", "SetScope",
    "ComputeAt", "ReverseComputeAt", "ComputeInline", "ReverseComputeInline",
    "DecomposeReduction", "DecomposePadding", "RFactor", "StorageAlign",
    "Blockize", "Tensorize", "TransformLayout", "TransformBlockLayout", "PadEinsum",
    "EnterPostproc",
)
ANSOR_KINDS = ("SP", "FSP", "FFSP", "RE", "FU", "AN", "PR", "CA", "CI", "CR", "CHR", "CHW", "RF", "SA")
VOCAB = ("<unk>",) + MS_KINDS + tuple(f"ansor:{k}" for k in ANSOR_KINDS)
KIND_INDEX = {k: i for i, k in enumerate(VOCAB)}

ANN_KEYS = (
    "<none>",
    "<other>",
    "meta_schedule.tiling_structure",
    "meta_schedule.parallel",
    "meta_schedule.vectorize",
    "meta_schedule.unroll_explicit",
    "meta_schedule.unroll_implicit",
    "pragma_auto_unroll_max_step",
    "pragma_unroll_explicit",
    "meta_schedule.cooperative_fetch",
    "meta_schedule.auto_tensorize",
    "ansor:auto_unroll_max_step",
)
ANN_INDEX = {k: i for i, k in enumerate(ANN_KEYS)}

NUM_SLOTS = 6
TOKEN_DIM = len(VOCAB) + len(ANN_KEYS) + NUM_SLOTS


class Decisions(list):
    """A program's sampling decisions in trace order (the list itself), and the same decisions by
    meaning: `tiles` (each loop's tile factors, outermost first, the outer factor included),
    `categoricals` (chosen values, e.g. unroll steps) and `locations` (compute-location choices:
    -2 inline, -1 root, k >= 0 a loop index). The flat features read the meaning, not positions."""

    def __init__(self, values=(), tiles=(), categoricals=(), locations=()):
        super().__init__(values)
        self.tiles: list[list[float]] = [list(t) for t in tiles]
        self.categoricals: list[float] = list(categoricals)
        self.locations: list[float] = list(locations)
        self.structure: list[float] | None = None  # STRUCTURE_FEATURE_NAMES where the trace is MetaSchedule's


class TraceParseError(ValueError):
    """A trace that is not valid MetaSchedule trace JSON nor an Ansor step list."""


def slog2(x: float) -> float:
    return math.copysign(math.log2(1.0 + abs(x)), x)


def _numbers(values) -> list[float]:
    out: list[float] = []
    for v in values:
        if isinstance(v, bool):
            out.append(float(v))
        elif isinstance(v, (int, float)):
            out.append(float(v))
        elif isinstance(v, list):
            out.extend(_numbers(v))
    return out


def _token(kind: str, ann_key: str | None, numbers: list[float]) -> list[float]:
    tok = [0.0] * TOKEN_DIM
    tok[KIND_INDEX.get(kind, 0)] = 1.0
    a = ANN_INDEX["<none>"] if ann_key is None else ANN_INDEX.get(ann_key, ANN_INDEX["<other>"])
    tok[len(VOCAB) + a] = 1.0
    for i, x in enumerate(numbers[:NUM_SLOTS]):
        tok[len(VOCAB) + len(ANN_KEYS) + i] = slog2(x)
    return tok


# Program structure that the tiles alone do not say (tc-feat-5; measured: benchmarks/structure_features.py).
# Where producers are computed: the first compute-location decisions in trace order (a pool's two
# or three `SampleComputeLocation`s decide its speed; within a task the same blocks come in the
# same order; -2 inline, -1 root, k under loop k, NO_LOCATION absent). What MetaSchedule's
# postprocessor makes parallel and vectorized: it fuses the first block's outer loops into one
# parallel loop and the largest block's inner loops into one vectorized loop (the trace after
# `EnterPostproc` records how many); their extents are the products of those loops' split factors
# in the multi-level tiling's order (the last `Reorder`). log2 of each, UNKNOWN_EXTENT where the
# trace does not tell (no postprocessor part, a factor left to inference, an Ansor step list).
STRUCTURE_LOCATIONS = 3
STRUCTURE_FEATURE_NAMES = tuple(f"location_first{j}" for j in range(STRUCTURE_LOCATIONS)) + ("parallel_log_extent", "vector_log_extent")
NO_LOCATION = -3.0
UNKNOWN_EXTENT = -1.0
STRUCTURE_ABSENT = [NO_LOCATION] * STRUCTURE_LOCATIONS + [UNKNOWN_EXTENT, UNKNOWN_EXTENT]


def _size(x) -> int:
    return len(x) if isinstance(x, list) else 0


class StructureWalk:
    """Follows a MetaSchedule trace instruction by instruction for STRUCTURE_FEATURE_NAMES: each
    split loop's factor and the last `Reorder` before `EnterPostproc`, then, block by block (one a
    `GetLoops`), how many loops the postprocessor fused into its parallel and vectorized loops and
    whether it is a reduction's rewrite (`DecomposeReduction`: not a loop nest the rule fused).
    Factors are whatever `var_value` maps a sampled variable to (a float here, a column reference
    in the batch encoder), so both encoders share this walk."""

    def __init__(self, in_postproc: bool = False):
        self.factor: dict = {}
        self.reorder: list | None = None
        self.blocks: list[list] | None = [] if in_postproc else None  # [loops, parallel fused, vectorized fused, reduction rewrite]
        self._fused = 0

    def step(self, kind, inputs, outputs, var_value: dict) -> None:
        if self.blocks is not None:
            self.postproc_step(kind, _size(inputs), _size(outputs))
        elif kind == "Split" and isinstance(inputs, list) and inputs and isinstance(outputs, list):
            for name, v in zip(outputs, inputs[1:]):
                if not isinstance(name, str):
                    continue
                if isinstance(v, str) and v in var_value:
                    self.factor[name] = var_value[v]
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.factor[name] = float(v)
                else:
                    self.factor[name] = None  # "None": the extent's remainder, not in the trace
        elif kind == "Reorder" and _size(inputs) >= 2:
            self.reorder = list(inputs)
        elif kind == "EnterPostproc":
            self.blocks = []

    def postproc_step(self, kind, n_inputs: int, n_outputs: int) -> None:
        if kind == "GetLoops":
            self.blocks.append([n_outputs, 0, 0, False])
            self._fused = 0
        elif not self.blocks:
            return
        elif kind == "Fuse":
            self._fused = n_inputs
        elif kind == "Parallel":
            self.blocks[-1][1] = max(self.blocks[-1][1], self._fused or 1)
        elif kind == "Vectorize":
            self.blocks[-1][2] = max(self.blocks[-1][2], self._fused or 1)
        elif kind == "DecomposeReduction":
            self.blocks[-1][3] = True

    def reorder_factors(self) -> list | None:
        if self.reorder is None:
            return None
        return [self.factor.get(x) if isinstance(x, str) else None for x in self.reorder]

    def postproc_fuses(self) -> tuple[int, int] | None:
        """(loops fused into the first block's parallel loop, into the largest block's vectorized
        loop); None without a postprocessor part or a loop nest in it."""
        if self.blocks is None:
            return None
        nests = [b for b in self.blocks if not b[3]]
        if not nests:
            return None
        largest = max(nests, key=lambda b: b[0])
        return nests[0][1], largest[2]


def _log_extent(factors) -> float:
    if factors is None or any(f is None or not f >= 1 for f in factors):
        return UNKNOWN_EXTENT
    e = 1.0
    for f in factors:
        e = e * f
    return math.log2(e) if math.isfinite(e) else UNKNOWN_EXTENT


def structure_features(locations: Sequence[float], reorder_factors: list | None, fuses: tuple[int, int] | None) -> list[float]:
    """STRUCTURE_FEATURE_NAMES from the compute-location decisions, the tiled loops' factors in
    their final order and `StructureWalk.postproc_fuses`."""
    locs = [float(locations[j]) if j < len(locations) else NO_LOCATION for j in range(STRUCTURE_LOCATIONS)]
    if fuses is None or reorder_factors is None:
        return locs + [UNKNOWN_EXTENT, UNKNOWN_EXTENT]
    k, m = fuses
    n = len(reorder_factors)
    return locs + [_log_extent(reorder_factors[:k] if k <= n else None), _log_extent(reorder_factors[n - m:] if m <= n else None)]


def _tokenize_metaschedule(insts: list, decisions: list) -> tuple[list[list[float]], list[float]]:
    dec_by_inst = {int(i): d for i, d in decisions}
    var_value: dict[str, float] = {}
    tokens: list[list[float]] = []
    decision_values: list[float] = []
    tiles: list[list[float]] = []
    categoricals: list[float] = []
    locations: list[float] = []
    structure = StructureWalk()
    for idx, inst in enumerate(insts):
        if not isinstance(inst, list) or len(inst) != 4:
            raise TraceParseError(f"instruction {idx}: expected [kind, inputs, attrs, outputs], got {inst!r:.80}")
        kind, inputs, attrs, outputs = inst
        structure.step(kind, inputs, outputs, var_value)
        numbers: list[float] = []
        ann_key = None
        decision = dec_by_inst.get(idx)
        if kind == "SamplePerfectTile" and decision is not None:
            numbers = _numbers(decision)
            for name, val in zip(outputs, decision):
                var_value[name] = float(val)
            decision_values.extend(numbers)
            tiles.append(numbers)
        elif kind == "SampleCategorical" and decision is not None:
            candidates = attrs[0] if attrs else []
            value = float(candidates[int(decision)]) if int(decision) < len(candidates) else float(decision)
            numbers = [value, float(decision), float(len(candidates))]
            if outputs:
                var_value[outputs[0]] = value
            decision_values.append(value)
            categoricals.append(value)
        else:
            if decision is not None:
                numbers.extend(_numbers([decision]))
                decision_values.extend(_numbers([decision]))
                if kind == "SampleComputeLocation":
                    locations.extend(_numbers([decision]))
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
                numbers.extend(_numbers(attrs))
            if not numbers:
                numbers = [float(len(outputs))]
        tokens.append(_token(kind, ann_key, numbers))
    decisions = Decisions(decision_values, tiles, categoricals, locations)
    decisions.structure = structure_features(locations, structure.reorder_factors(), structure.postproc_fuses())
    return tokens, decisions


def _tokenize_ansor(steps: list) -> tuple[list[list[float]], list[float]]:
    tokens: list[list[float]] = []
    decision_values: list[float] = []
    tiles: list[list[float]] = []
    categoricals: list[float] = []
    for idx, step in enumerate(steps):
        if not isinstance(step, list) or not step or not isinstance(step[0], str):
            raise TraceParseError(f"step {idx}: expected [kind, ...], got {step!r:.80}")
        kind = step[0]
        ann_key = None
        if kind == "SP":  # [SP, stage, iter, extent, lengths, inner_to_outer]
            extent = step[3] if len(step) > 3 and isinstance(step[3], (int, float)) else 0
            lengths = _numbers(step[4]) if len(step) > 4 and isinstance(step[4], list) else []
            numbers = [float(extent or 0)] + lengths
            decision_values.extend(lengths)
            # Ansor lists the inner factors; the outer one is what the extent leaves over
            inner = math.prod(lengths) if lengths else 1.0
            outer = float(extent) / inner if extent and inner > 0 else 1.0
            tiles.append([max(outer, 1.0)] + lengths)
        elif kind == "PR":  # [PR, stage, iter, "auto_unroll_max_step$64"]
            pragma = str(step[3]) if len(step) > 3 else ""
            key, _, val = pragma.partition("$")
            ann_key = f"ansor:{key}"
            numbers = [float(val)] if val.lstrip("-").isdigit() else []
            decision_values.extend(numbers)
            categoricals.extend(numbers)
        else:
            numbers = _numbers(step[1:])
        tokens.append(_token(f"ansor:{kind}", ann_key, numbers))
    return tokens, Decisions(decision_values, tiles, categoricals)


def tokenize_trace(trace_json: str) -> tuple[np.ndarray, Decisions]:
    """Token matrix (n_primitives x TOKEN_DIM, float32) and the ordered sampling decisions.

    Accepts a MetaSchedule trace `[[instructions...], [decisions...]]` or an Ansor step list
    `[[kind, ...], ...]` (TenSet).
    """
    try:
        obj = json.loads(trace_json)
    except json.JSONDecodeError as exc:
        raise TraceParseError(f"trace is not JSON: {exc}") from None
    if (
        isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], list) and isinstance(obj[1], list)
        and (not obj[0] or (isinstance(obj[0][0], list) and len(obj[0][0]) == 4 and isinstance(obj[0][0][1], list)))
        and all(isinstance(d, list) and len(d) == 2 for d in obj[1])
    ):
        tokens, decisions = _tokenize_metaschedule(obj[0], obj[1])
    elif isinstance(obj, list):
        tokens, decisions = _tokenize_ansor(obj)
    else:
        raise TraceParseError(f"trace must be a JSON list, got {type(obj).__name__}")
    mat = np.asarray(tokens, dtype=np.float32).reshape(len(tokens), TOKEN_DIM)
    return mat, decisions


# The sampling decisions by meaning (replacing `decision_<i>`, the i-th decision in trace order,
# whose meaning moves with the operator: issue 13, benchmarks/unseen_family_analysis.py). Loops
# split into three or more levels are a multi-level tiling's loops (`tiled_`: SSRSRS's spatial
# loops, Ansor's SP with 3 inner factors); loops split in two are reductions or a plain split
# (`split2_`). Per level the log2 factors are summed over loops, and shares of the loops' log
# extent make them comparable across operator sizes.
TILED_LEVELS = ("outer", "second", "middle", "penult", "inner")
DECISION_FEATURE_NAMES = (
    ("tiled_loops", "tiled_log_extent")
    + tuple(f"tiled_log_{lv}" for lv in TILED_LEVELS)
    + tuple(f"tiled_share_{lv}" for lv in TILED_LEVELS)
    + ("tiled_log_inner_last", "tiled_log_inner_max")
    + ("split2_loops", "split2_log_extent", "split2_log_outer", "split2_log_inner", "split2_share_outer", "split2_share_inner")
    + ("tile_log_inner_volume",)
    + ("categorical_n", "categorical_log_max", "categorical_log_sum")
    + ("location_n", "location_inline", "location_root", "location_mean_loop")
)


def _log2f(x: float) -> float:
    return math.log2(x) if x > 1 else 0.0


def _tiled_levels(factors: list[float]) -> list[float]:
    """log2 factors of one loop bucketed as TILED_LEVELS (three or more levels)."""
    logs = [_log2f(f) for f in factors]
    second = logs[1] if len(logs) >= 4 else 0.0
    middle = sum(logs[2:-2])
    return [logs[0], second, middle, logs[-2], logs[-1]]


def decision_features(decisions: Sequence[float]) -> list[float]:
    """DECISION_FEATURE_NAMES for a program: what its tiles, categoricals and compute locations
    mean, independent of where in the trace they were sampled."""
    tiles = getattr(decisions, "tiles", [])
    tiled = [t for t in tiles if len(t) >= 3]
    split2 = [t for t in tiles if len(t) == 2]
    levels = np.array([_tiled_levels(t) for t in tiled], dtype=np.float64).reshape(-1, len(TILED_LEVELS))
    level_sums = levels.sum(axis=0)
    tiled_extent = float(level_sums.sum())
    tiled_shares = level_sums / tiled_extent if tiled_extent > 0 else np.zeros(len(TILED_LEVELS))
    inner = levels[:, -1] if len(levels) else np.zeros(1)
    s2 = np.array([[_log2f(t[0]), _log2f(t[1])] for t in split2], dtype=np.float64).reshape(-1, 2).sum(axis=0)
    s2_extent = float(s2.sum())
    s2_shares = s2 / s2_extent if s2_extent > 0 else np.zeros(2)
    cats = [slog2(c) for c in getattr(decisions, "categoricals", [])]
    locs = list(getattr(decisions, "locations", []))
    loops = [x for x in locs if x >= 0]
    return (
        [float(len(tiled)), tiled_extent] + level_sums.tolist() + tiled_shares.tolist()
        + [float(inner[-1]), float(inner.max())]
        + [float(len(split2)), s2_extent, float(s2[0]), float(s2[1]), float(s2_shares[0]), float(s2_shares[1])]
        + [float(level_sums[-1] + s2[1])]
        + [float(len(cats)), max(cats, default=0.0), float(sum(cats))]
        + [float(len(locs)), float(sum(x == -2 for x in locs)), float(sum(x == -1 for x in locs)), float(np.mean(loops)) if loops else -1.0]
    )


# The same tiles loop by loop (tc-feat-4). DECISION_FEATURE_NAMES sum each level over the loops, so
# which loop holds which factor is lost, and within a task that is most of what tells two programs
# apart (the vectorized axis, the reduction's tile). Loops are counted from the last one sampled:
# tiles are sampled in the block's loop order, whose last spatial loop is the output's innermost
# (in row-major layouts, contiguous) axis in every operator kind, so `last0` means about the same
# in a matmul and a conv2d where a count from the first loop would not (measured: by_family).
# Per tiled loop: the level logs, the loop's log extent and the log of its tile at the q innermost
# levels (`in1` ... `in4`: the tile one cache level holds); per loop split in two: outer, inner,
# extent; and the tile volumes at those levels over every tiled loop. Absent loops read 0
# (`tiled_loops` / `split2_loops` tell them apart). Measured: benchmarks/loop_features.py.
LOOP_TILED_SLOTS = 6
LOOP_SPLIT2_SLOTS = 4
_INNER_LEVELS = 4
_TILED_LOOP_PARTS = tuple(f"log_{lv}" for lv in TILED_LEVELS) + ("log_extent",) + tuple(f"log_in{q}" for q in range(1, _INNER_LEVELS + 1))
_SPLIT2_LOOP_PARTS = ("log_outer", "log_inner", "log_extent")
LOOP_FEATURE_NAMES = (
    tuple(f"tiled_last{j}_{part}" for j in range(LOOP_TILED_SLOTS) for part in _TILED_LOOP_PARTS)
    + tuple(f"split2_last{j}_{part}" for j in range(LOOP_SPLIT2_SLOTS) for part in _SPLIT2_LOOP_PARTS)
    + tuple(f"tiled_log_in{q}_volume" for q in range(2, _INNER_LEVELS + 1))
)


def _tiled_loop_parts(factors: Sequence[float]) -> list[float]:
    """_TILED_LOOP_PARTS of one loop tiled in three or more levels (sums in a fixed order: the
    batch encoder repeats them column-wise and must get the same floats)."""
    logs = [_log2f(f) for f in factors]
    levels = _tiled_levels(list(factors))
    extent = levels[0]
    for x in levels[1:]:
        extent = extent + x
    inner = [logs[-1]]
    for q in range(2, _INNER_LEVELS + 1):
        inner.append(inner[-1] + logs[-q] if q <= len(logs) else inner[-1])
    return levels + [extent] + inner


def loop_features(decisions: Sequence[float]) -> list[float]:
    """LOOP_FEATURE_NAMES for a program: its tiles loop by loop, counted from the last loop."""
    tiles = getattr(decisions, "tiles", [])
    tiled = [_tiled_loop_parts(t) for t in tiles if len(t) >= 3]
    split2 = [t for t in tiles if len(t) == 2]
    out: list[float] = []
    for j in range(LOOP_TILED_SLOTS):
        out += tiled[-1 - j] if j < len(tiled) else [0.0] * len(_TILED_LOOP_PARTS)
    for j in range(LOOP_SPLIT2_SLOTS):
        if j < len(split2):
            o, i = _log2f(split2[-1 - j][0]), _log2f(split2[-1 - j][1])
            out += [o, i, o + i]
        else:
            out += [0.0, 0.0, 0.0]
    first_in = len(TILED_LEVELS) + 1  # the in1 column of a loop's parts
    for q in range(2, _INNER_LEVELS + 1):
        v = 0.0
        for parts in tiled:
            v = v + parts[first_in + q - 1]
        out.append(float(v))
    return out


def flat_program_features(tokens: np.ndarray, decisions: Sequence[float]) -> list[float]:
    """Fixed-length program features for tree models: primitive counts, annotation counts,
    the decisions by meaning (DECISION_FEATURE_NAMES), loop by loop (LOOP_FEATURE_NAMES),
    summaries and the structure (STRUCTURE_FEATURE_NAMES)."""
    n_kinds, n_ann = len(VOCAB), len(ANN_KEYS)
    if len(tokens):
        kind_counts = tokens[:, :n_kinds].sum(axis=0)
        ann_counts = tokens[:, n_kinds:n_kinds + n_ann].sum(axis=0)
        ann_counts[ANN_INDEX["<none>"]] = 0.0
        slots = tokens[:, n_kinds + n_ann:]
        ann_rows = tokens[:, n_kinds + ANN_INDEX["<none>"]] == 0
        max_ann_val = float(slots[ann_rows, 0].max()) if ann_rows.any() else 0.0
    else:
        kind_counts = np.zeros(n_kinds, dtype=np.float32)
        ann_counts = np.zeros(n_ann, dtype=np.float32)
        max_ann_val = 0.0
    logs = [slog2(d) for d in decisions] or [0.0]
    summary = [float(len(tokens)), float(len(decisions)), float(sum(logs)), float(max(logs)), max_ann_val]
    structure = getattr(decisions, "structure", None) or STRUCTURE_ABSENT
    return (list(map(float, kind_counts)) + list(map(float, ann_counts)) + decision_features(decisions) + loop_features(decisions)
            + summary + list(structure))


FLAT_PROGRAM_DIM = len(VOCAB) + len(ANN_KEYS) + len(DECISION_FEATURE_NAMES) + len(LOOP_FEATURE_NAMES) + 5 + len(STRUCTURE_FEATURE_NAMES)


# -- compact tokens: what a token matrix holds, in 8 numbers a primitive instead of TOKEN_DIM.
# A token is one-hot kind, one-hot annotation key and NUM_SLOTS numbers; the compact row keeps the
# two indices and the numbers, so the dense matrix is rebuilt exactly (`dense_tokens`) and the
# feature store holds 32 bytes a primitive instead of 292.
COMPACT_DIM = 2 + NUM_SLOTS


def compact_tokens(tokens: np.ndarray) -> np.ndarray:
    """(n, TOKEN_DIM) dense tokens -> (n, COMPACT_DIM) float32: kind index, annotation index, numbers."""
    tokens = np.asarray(tokens, dtype=np.float32).reshape(-1, TOKEN_DIM)
    out = np.empty((len(tokens), COMPACT_DIM), dtype=np.float32)
    out[:, 0] = tokens[:, : len(VOCAB)].argmax(axis=1)
    out[:, 1] = tokens[:, len(VOCAB): len(VOCAB) + len(ANN_KEYS)].argmax(axis=1)
    out[:, 2:] = tokens[:, len(VOCAB) + len(ANN_KEYS):]
    return out


def dense_tokens(compact: np.ndarray) -> np.ndarray:
    """(n, COMPACT_DIM) -> (n, TOKEN_DIM) float32, exactly the matrix `tokenize_trace` returned."""
    compact = np.asarray(compact, dtype=np.float32).reshape(-1, COMPACT_DIM)
    n = len(compact)
    out = np.zeros((n, TOKEN_DIM), dtype=np.float32)
    rows = np.arange(n)
    out[rows, compact[:, 0].astype(np.int64)] = 1.0
    out[rows, len(VOCAB) + compact[:, 1].astype(np.int64)] = 1.0
    out[:, len(VOCAB) + len(ANN_KEYS):] = compact[:, 2:]
    return out


def encode_programs_reference(traces: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference encoder, one trace at a time: (program features (n, FLAT_PROGRAM_DIM)
    float64, token offsets (n + 1,) int64, compact tokens (total primitives, COMPACT_DIM) float32).
    `encode_programs` must return exactly this."""
    feats = np.zeros((len(traces), FLAT_PROGRAM_DIM), dtype=np.float64)
    offsets = np.zeros(len(traces) + 1, dtype=np.int64)
    parts = []
    for i, trace in enumerate(traces):
        tokens, decisions = tokenize_trace(trace)
        feats[i] = flat_program_features(tokens, decisions)
        parts.append(compact_tokens(tokens))
        offsets[i + 1] = offsets[i] + len(tokens)
    toks = np.concatenate(parts) if parts else np.zeros((0, COMPACT_DIM), dtype=np.float32)
    return feats, offsets, toks
