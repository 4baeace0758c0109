"""The feature table: what every cost model reads, built from records or from live traces.

One row per program (valid records only): ids, the dataset slot and the target it was measured
on, weights, the label `min_latency / latency` per task (the *metadata*, a small pandas frame),
the flat vector (program summary + workload + hardware features) as one (n, d) float32 matrix,
and the program's primitive tokens as compact rows (`program.COMPACT_DIM` numbers a primitive)
with per-row offsets. No per-row Python objects: a row costs tens of bytes of metadata plus its
numbers, and the store (`store.py`) keeps the same columns in Arrow. MetaSchedule's per-store
features, where extracted, ride alongside.

A *slot* names one dataset of the pipeline (`zen5-2c.avx2-t1`, or `host` for this machine's fresh
measurement); `target` is the real target id the slot's records were measured on.
"""

from __future__ import annotations

import json
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..hardware.catalog import HARDWARE_FEATURE_NAMES
from .program import ANN_KEYS, COMPACT_DIM, DECISION_FEATURE_NAMES, LOOP_FEATURE_NAMES, STRUCTURE_FEATURE_NAMES, TOKEN_DIM, VOCAB, compact_tokens, dense_tokens, flat_program_features
from .workload import WORKLOAD_FEATURE_NAMES, workload_features

N_HARDWARE = len(HARDWARE_FEATURE_NAMES)  # the flat vector ends with the hardware features, `is_gpu` first

# Bump whenever the meaning or layout of any feature changes: models record it and refuse a mismatch.
FEATURE_SCHEMA_VERSION = "tc-feat-5"  # 2: platform hardware features (catalog v2), a `slot` column; 3: decisions by meaning; 4: tiles loop by loop; 5: structure (compute locations, parallel / vectorized extents)

# The per-row metadata columns of a feature table, in order (the numbers live beside them).
META_COLUMNS = ("record_id", "task_id", "program_id", "slot", "target", "task_weight", "networks", "latency_s", "label", "n_tokens")
# The columns of a feature frame (`FeatureTable.to_frame`: one object per row, for small tables and checks).
FRAME_COLUMNS = ("record_id", "task_id", "program_id", "slot", "target", "task_weight", "networks", "latency_s", "label", "flat", "n_tokens", "tokens")


class MissingFeaturesError(ValueError):
    """A model needs features the table does not carry (e.g. MetaSchedule's, for tvm_xgb)."""


def _ragged_take(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new offsets, positions into the ragged values) of rows `idx` of a ragged array."""
    starts, lengths = offsets[idx], offsets[idx + 1] - offsets[idx]
    new = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new[1:])
    pos = np.arange(new[-1], dtype=np.int64) + np.repeat(starts - new[:-1], lengths)
    return new, pos


class FeatureTable:
    """A set of programs as model inputs.

    `frame` holds the metadata (META_COLUMNS); `flat` is the (n, d) float32 matrix; the tokens are
    `token_rows` (all rows' primitives, COMPACT_DIM each) cut by `token_offsets`. The table carries
    what its numbers are: `feature_names` (one a column of `flat`) and `feature_schema` (the
    layout's version, the code's own for a table built here, the store's for one read back), so a
    model created from it needs nothing beside it. A frame that still
    carries `flat` / `tokens` list columns (a hand-built table, a feature frame) is taken apart on
    construction. `ms_features` (one PerStoreFeature matrix per row) is present only where the
    msfeatures stage (or a live search) extracted it.
    """

    def __init__(self, frame: pd.DataFrame, slot: str = "", ms_features: list[np.ndarray] | None = None, *,
                 flat: np.ndarray | None = None, token_offsets: np.ndarray | None = None, token_rows: np.ndarray | None = None,
                 feature_names: Sequence[str] | None = None, feature_schema: str = FEATURE_SCHEMA_VERSION):
        names = feature_names if feature_names is not None else frame.attrs.get("feature_names")
        if "flat" in frame.columns:
            flat = np.stack([np.asarray(v, dtype=np.float32) for v in frame["flat"]]) if len(frame) else np.zeros((0, 0), np.float32)
        if "tokens" in frame.columns:
            n_tok = frame["n_tokens"].to_numpy(dtype=np.int64) if "n_tokens" in frame.columns else np.zeros(len(frame), np.int64)
            parts = [compact_tokens(np.asarray(v, dtype=np.float32).reshape(int(k), TOKEN_DIM)) for v, k in zip(frame["tokens"], n_tok)]
            token_rows = np.concatenate(parts) if parts else np.zeros((0, COMPACT_DIM), np.float32)
            token_offsets = np.concatenate([[0], np.cumsum(n_tok)]).astype(np.int64)
        frame = frame.drop(columns=[c for c in ("flat", "tokens") if c in frame.columns])
        n = len(frame)
        if "n_tokens" not in frame.columns:
            frame["n_tokens"] = np.diff(token_offsets) if token_offsets is not None else np.zeros(n, np.int64)
        self.frame = frame.reset_index(drop=True) if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 else frame
        self.slot = slot
        self.ms_features = ms_features
        self._flat = np.asarray(flat, dtype=np.float32) if flat is not None else np.zeros((n, 0), np.float32)
        self.token_offsets = np.asarray(token_offsets, dtype=np.int64) if token_offsets is not None else np.zeros(n + 1, np.int64)
        self.token_rows = np.asarray(token_rows, dtype=np.float32).reshape(-1, COMPACT_DIM) if token_rows is not None else np.zeros((0, COMPACT_DIM), np.float32)
        if self.token_offsets[0] != 0:  # a slice of a larger ragged array: keep only its rows
            self.token_rows = self.token_rows[self.token_offsets[0]:self.token_offsets[-1]]
            self.token_offsets = self.token_offsets - self.token_offsets[0]
        self.feature_names = list(names) if names else None
        self.feature_schema = feature_schema  # what the numbers mean: a model trained on them records it
        if len(self._flat) != n or len(self.token_offsets) != n + 1:
            raise ValueError(f"feature table of {n} rows with {len(self._flat)} flat vectors and {len(self.token_offsets) - 1} token rows")

    @property
    def target_id(self) -> str:
        """The real target id of the rows (of the first row, when several are pooled)."""
        return str(self.frame["target"].iloc[0]) if len(self.frame) else ""

    @property
    def platform_id(self) -> str:
        return self.target_id.split(".")[0]

    @property
    def kind(self) -> str:
        """"gpu" or "cpu", from the rows' hardware features (the first of them is `is_gpu`)."""
        d = self._flat.shape[1]
        return "gpu" if len(self._flat) and d >= N_HARDWARE and float(self._flat[0, d - N_HARDWARE]) > 0.5 else "cpu"

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def flat(self) -> np.ndarray:
        """(n, d) float32: program summary, workload and hardware features."""
        if not len(self.frame):
            return np.zeros((0, self._flat.shape[1]), dtype=np.float32)
        return self._flat

    @flat.setter
    def flat(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float32)
        if value.shape[0] != len(self.frame):
            raise ValueError(f"{value.shape[0]} flat vectors for {len(self.frame)} rows")
        self._flat = value

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy()

    @property
    def n_tokens(self) -> np.ndarray:
        return np.diff(self.token_offsets)

    @property
    def groups(self) -> np.ndarray:
        """Ranking groups: programs compete within (slot, task): one measurement session of a task."""
        return (self.frame["slot"].astype(str) + "|" + self.frame["task_id"].astype(str)).to_numpy()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.frame["task_id"], self.frame["task_weight"].astype(float)))

    def require(self, inputs: Sequence[str], who: str) -> None:
        if "ms_features" in inputs and self.ms_features is None:
            raise MissingFeaturesError(f"{who} needs MetaSchedule features, which {self.slot or 'this table'} does not have (the msfeatures stage)")

    def tokens(self, i: int) -> np.ndarray:
        """Row i's dense token matrix (n_tokens x TOKEN_DIM)."""
        return dense_tokens(self.token_rows[self.token_offsets[i]:self.token_offsets[i + 1]])

    def dense_tokens(self, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, max_len, TOKEN_DIM) float32 tokens, zero-padded and cut at max_len, and each row's
        length (at least 1): the attention model's input, built without a per-row loop."""
        n = len(self)
        out = np.zeros((n, max_len, TOKEN_DIM), dtype=np.float32)
        counts = np.diff(self.token_offsets)
        rows = np.repeat(np.arange(n), counts)
        pos = np.arange(len(self.token_rows), dtype=np.int64) - np.repeat(self.token_offsets[:-1], counts)
        keep = pos < max_len
        rows, pos, t = rows[keep], pos[keep], self.token_rows[keep]
        out[rows, pos, t[:, 0].astype(np.int64)] = 1.0
        out[rows, pos, len(VOCAB) + t[:, 1].astype(np.int64)] = 1.0
        out[rows, pos, len(VOCAB) + len(ANN_KEYS):] = t[:, 2:]
        return out, np.maximum(1, np.minimum(counts, max_len))

    def with_frame(self, frame: pd.DataFrame) -> "FeatureTable":
        """The same programs' numbers under other metadata (same rows, same order)."""
        return FeatureTable(frame, self.slot, self.ms_features, flat=self._flat, token_offsets=self.token_offsets, token_rows=self.token_rows,
                            feature_names=self.feature_names, feature_schema=self.feature_schema)

    def take(self, idx) -> "FeatureTable":
        """The rows `idx` (features and MetaSchedule features alike)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        ms = [self.ms_features[i] for i in idx] if self.ms_features is not None else None
        offsets, pos = _ragged_take(self.token_offsets, idx)
        return FeatureTable(self.frame.iloc[idx].reset_index(drop=True), self.slot, ms, flat=self._flat[idx], token_offsets=offsets,
                            token_rows=self.token_rows[pos], feature_names=self.feature_names, feature_schema=self.feature_schema)

    @staticmethod
    def concat(parts: Sequence["FeatureTable"], slot: str) -> "FeatureTable":
        parts = list(parts)
        frame = pd.concat([p.frame for p in parts], ignore_index=True)
        ms = None if any(p.ms_features is None for p in parts) else [m for p in parts for m in p.ms_features]
        widths = {p._flat.shape[1] for p in parts if len(p)}
        flat = np.concatenate([p._flat for p in parts if len(p)]) if widths else np.zeros((0, 0), np.float32)
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.token_offsets[1:] + base)
            base += int(p.token_offsets[-1])
        rows = np.concatenate([p.token_rows for p in parts]) if parts else np.zeros((0, COMPACT_DIM), np.float32)
        names = next((p.feature_names for p in parts if p.feature_names), None)
        schemas = {p.feature_schema for p in parts}
        if len(schemas) > 1:
            raise ValueError(f"FeatureTable.concat: the parts have different feature schemas {sorted(schemas)}: featurize them with one tensorcost version")
        schema = schemas.pop() if schemas else FEATURE_SCHEMA_VERSION
        return FeatureTable(frame, slot, ms, flat=flat, token_offsets=np.concatenate(offsets), token_rows=rows, feature_names=names, feature_schema=schema)

    def iter_tables(self, inputs=None) -> Iterator["FeatureTable"]:
        """The rows as in-memory tables (here: the table itself; a store view yields fragments)."""
        yield self

    def materialize(self, inputs=None) -> "FeatureTable":
        return self

    def iter_groups(self) -> Iterator[tuple[str, np.ndarray]]:
        """(group, row indices) of each ranking group, in first-appearance order."""
        groups = self.groups
        uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(uniq)))])
        for g in np.argsort(first):
            yield str(uniq[g]), order[bounds[g]:bounds[g + 1]]

    def to_frame(self) -> pd.DataFrame:
        """The feature frame (FRAME_COLUMNS, `flat` and the flattened dense `tokens` one object a
        row): for small tables, checks and tests; the pipeline keeps the columns."""
        out = self.frame.copy()
        out.insert(list(out.columns).index("label") + 1, "flat", list(self.flat))
        out["tokens"] = [self.tokens(i).reshape(-1) for i in range(len(self))]
        out = out[[c for c in FRAME_COLUMNS if c in out.columns]]
        out.attrs["feature_names"] = list(self.feature_names or [])
        return out


def flat_feature_names(hardware_names: Sequence[str]) -> list[str]:
    names = [f"count_{k}" for k in VOCAB] + [f"ann_{k}" for k in ANN_KEYS]
    names += list(DECISION_FEATURE_NAMES) + list(LOOP_FEATURE_NAMES)
    names += ["n_tokens", "n_decisions", "sum_log_decisions", "max_log_decision", "max_ann_value"]
    names += list(STRUCTURE_FEATURE_NAMES)
    names += list(WORKLOAD_FEATURE_NAMES) + [f"hw_{h}" for h in hardware_names]
    return names


def flat_vector(tokens: np.ndarray, decisions: Sequence[float], workload: Sequence[float], hardware: Sequence[float]) -> np.ndarray:
    return np.asarray(flat_program_features(tokens, decisions) + list(workload) + list(hardware), dtype=np.float32)


def per_task_labels(task_ids: Sequence[str], latencies: Sequence[float]) -> np.ndarray:
    """Label = min latency of the task / latency, in (0, 1]; 1 for the task's best program."""
    lat = np.asarray(latencies, dtype=np.float64)
    if not len(lat):
        return np.empty(0, dtype=np.float64)
    _, inverse = np.unique(np.asarray(task_ids), return_inverse=True)
    best = np.full(inverse.max() + 1, np.inf)
    np.minimum.at(best, inverse, lat)
    return best[inverse] / lat


def _encoder():
    """The program encoder: the vectorized one (`encode.py`) where present, else the reference."""
    try:
        from .encode import encode_programs
    except ImportError:
        from .program import encode_programs_reference as encode_programs
    return encode_programs


def featurize_records(table, hardware_features: Sequence[float], hardware_names: Sequence[str], slot: str | None = None) -> FeatureTable:
    """Canonical records (pyarrow Table) -> the FeatureTable of its valid records.

    Error records are dropped here (they have no latency); the caller reports how many. `slot`
    defaults to the target. Workload features are computed once a task, programs by the encoder.
    """
    table = table.filter(pc.equal(table.column("error_no"), 0))
    meta = table.select(["record_id", "task_id", "program_id", "target", "task_weight", "networks", "latency_s"]).to_pandas()
    n = len(meta)
    prog, offsets, toks = _encoder()(table.column("trace").to_pylist())
    task_ids = meta["task_id"].to_numpy()
    uniq, first, inverse = np.unique(task_ids, return_index=True, return_inverse=True) if n else (np.array([]), np.array([], np.int64), np.array([], np.int64))
    wl_cols = table.select(["op_kind", "shapes", "flops", "bytes_moved"]).take(pa_indices(first)).to_pylist() if n else []
    wl = np.array([workload_features(r["op_kind"], json.loads(r["shapes"]), r["flops"], r["bytes_moved"]) for r in wl_cols], dtype=np.float64).reshape(len(uniq), len(WORKLOAD_FEATURE_NAMES))
    hw = np.asarray(list(hardware_features), dtype=np.float64)
    flat = np.empty((n, prog.shape[1] + wl.shape[1] + len(hw)), dtype=np.float32)
    flat[:, : prog.shape[1]] = prog
    flat[:, prog.shape[1]: prog.shape[1] + wl.shape[1]] = wl[inverse] if n else wl
    flat[:, prog.shape[1] + wl.shape[1]:] = hw
    frame = pd.DataFrame({
        "record_id": meta["record_id"], "task_id": meta["task_id"], "program_id": meta["program_id"],
        "slot": meta["target"] if slot is None else slot, "target": meta["target"], "task_weight": meta["task_weight"], "networks": meta["networks"],
        "latency_s": meta["latency_s"], "label": per_task_labels(task_ids, meta["latency_s"]), "n_tokens": np.diff(offsets),
    })
    return FeatureTable(frame, slot if slot is not None else (str(meta["target"].iloc[0]) if n else ""), flat=flat, token_offsets=offsets,
                        token_rows=toks, feature_names=flat_feature_names(hardware_names))


def pa_indices(idx: np.ndarray):
    return pa.array(np.asarray(idx, dtype=np.int64))


def featurize_table(table, hardware_features: Sequence[float], hardware_names: Sequence[str], slot: str | None = None) -> pd.DataFrame:
    """Canonical records -> the feature frame of the valid records (FRAME_COLUMNS, one object a
    row; `attrs["feature_names"]`): `featurize_records(...).to_frame()`, for small tables."""
    return featurize_records(table, hardware_features, hardware_names, slot).to_frame()


def table_from_traces(traces: Sequence[str], workload: Sequence[float], hardware: Sequence[float], target: str = "", task_id: str = "live") -> FeatureTable:
    """Live candidates of one task (trace JSON) as a feature table, featurized exactly as the
    training records were; no labels (zeros)."""
    n = len(traces)
    prog, offsets, toks = _encoder()(list(traces))
    flat = np.concatenate([prog, np.tile(np.asarray(list(workload) + list(hardware), dtype=np.float64), (n, 1))], axis=1).astype(np.float32)
    frame = pd.DataFrame(
        {
            "record_id": [""] * n, "task_id": [task_id] * n, "program_id": [""] * n, "slot": [target] * n, "target": [target] * n,
            "task_weight": np.ones(n, dtype=np.int32), "networks": ["{}"] * n, "latency_s": np.zeros(n), "label": np.zeros(n),
            "n_tokens": np.diff(offsets),
        }
    )
    return FeatureTable(frame, target, flat=flat, token_offsets=offsets, token_rows=toks)
