"""The feature table: what every cost model reads, built from records or from live traces.

One row per program (valid records only): ids, the dataset slot and the target it was measured
on, weights, the label `min_latency / latency` per task, the flat vector (program summary +
workload + hardware features), and the program's primitive tokens. MetaSchedule's per-store
features, where extracted, ride alongside.

A *slot* names one dataset of the pipeline (`zen5-2c.avx2-t1`, or `host` for this machine's fresh
measurement); `target` is the real target id the slot's records were measured on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .program import ANN_KEYS, DECISION_FEATURE_NAMES, VOCAB, flat_program_features, tokenize_trace
from .workload import WORKLOAD_FEATURE_NAMES, workload_features
from ..hardware.catalog import HARDWARE_FEATURE_NAMES

N_HARDWARE = len(HARDWARE_FEATURE_NAMES)  # the flat vector ends with the hardware features, `is_gpu` first

# Bump whenever the meaning or layout of any feature changes: models record it and refuse a mismatch.
FEATURE_SCHEMA_VERSION = "tc-feat-3"  # 2: platform hardware features (catalog v2), a `slot` column; 3: decisions by meaning

# The columns of a feature table's frame, in order.
FRAME_COLUMNS = ("record_id", "task_id", "program_id", "slot", "target", "task_weight", "networks", "latency_s", "label", "flat", "n_tokens", "tokens")


class MissingFeaturesError(ValueError):
    """A model needs features the table does not carry (e.g. MetaSchedule's, for tvm_xgb)."""


@dataclass
class FeatureTable:
    """A set of programs as model inputs. `ms_features` (one PerStoreFeature matrix per row) is
    present only where the msfeatures stage (or a live search) extracted it."""

    frame: pd.DataFrame
    slot: str = ""
    ms_features: list[np.ndarray] | None = None

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
        flat = self.frame["flat"].iloc[0] if len(self.frame) else ()
        return "gpu" if len(flat) >= N_HARDWARE and float(flat[len(flat) - N_HARDWARE]) > 0.5 else "cpu"

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def flat(self) -> np.ndarray:
        """(n, d) float32: program summary, workload and hardware features."""
        if not len(self.frame):
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(self.frame["flat"].to_numpy()).astype(np.float32, copy=False)

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy()

    @property
    def groups(self) -> np.ndarray:
        """Ranking groups: programs compete within (slot, task): one measurement session of a task."""
        return (self.frame["slot"] + "|" + self.frame["task_id"]).to_numpy()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.frame["task_id"], self.frame["task_weight"].astype(float)))

    def require(self, inputs: Sequence[str], who: str) -> None:
        if "ms_features" in inputs and self.ms_features is None:
            raise MissingFeaturesError(f"{who} needs MetaSchedule features, which {self.slot or 'this table'} does not have (the msfeatures stage)")

    def take(self, idx) -> "FeatureTable":
        """The rows `idx` (features and MetaSchedule features alike)."""
        idx = np.asarray(idx)
        ms = [self.ms_features[i] for i in idx] if self.ms_features is not None else None
        return FeatureTable(self.frame.iloc[idx].reset_index(drop=True), self.slot, ms)

    @staticmethod
    def concat(parts: Sequence["FeatureTable"], slot: str) -> "FeatureTable":
        frame = pd.concat([p.frame for p in parts], ignore_index=True)
        ms = None if any(p.ms_features is None for p in parts) else [m for p in parts for m in p.ms_features]
        return FeatureTable(frame, slot, ms)


def flat_feature_names(hardware_names: Sequence[str]) -> list[str]:
    names = [f"count_{k}" for k in VOCAB] + [f"ann_{k}" for k in ANN_KEYS]
    names += list(DECISION_FEATURE_NAMES)
    names += ["n_tokens", "n_decisions", "sum_log_decisions", "max_log_decision", "max_ann_value"]
    names += list(WORKLOAD_FEATURE_NAMES) + [f"hw_{h}" for h in hardware_names]
    return names


def flat_vector(tokens: np.ndarray, decisions: Sequence[float], workload: Sequence[float], hardware: Sequence[float]) -> np.ndarray:
    return np.asarray(flat_program_features(tokens, decisions) + list(workload) + list(hardware), dtype=np.float32)


def per_task_labels(task_ids: Sequence[str], latencies: Sequence[float]) -> np.ndarray:
    """Label = min latency of the task / latency, in (0, 1]; 1 for the task's best program."""
    task_ids = np.asarray(task_ids)
    lat = np.asarray(latencies, dtype=np.float64)
    labels = np.empty_like(lat)
    for t in np.unique(task_ids):
        m = task_ids == t
        labels[m] = lat[m].min() / lat[m]
    return labels


def featurize_table(table, hardware_features: Sequence[float], hardware_names: Sequence[str], slot: str | None = None) -> pd.DataFrame:
    """Canonical records (pyarrow Table) -> feature frame of the valid records (FRAME_COLUMNS).

    `flat` is list<float32>, `tokens` the flattened n_tokens x TOKEN_DIM matrix. Error records are
    dropped here (they have no latency); the caller reports how many. `slot` defaults to the target.
    """
    df = table.to_pandas()
    df = df[df["error_no"] == 0].reset_index(drop=True)
    flats, toks, ntok = [], [], []
    wl_cache: dict[str, list[float]] = {}
    for row in df.itertuples(index=False):
        if row.task_id not in wl_cache:
            wl_cache[row.task_id] = workload_features(row.op_kind, json.loads(row.shapes), row.flops, row.bytes_moved)
        tokens, decisions = tokenize_trace(row.trace)
        flats.append(flat_vector(tokens, decisions, wl_cache[row.task_id], hardware_features))
        toks.append(tokens.reshape(-1))
        ntok.append(len(tokens))
    out = pd.DataFrame(
        {
            "record_id": df["record_id"], "task_id": df["task_id"], "program_id": df["program_id"],
            "slot": df["target"] if slot is None else slot, "target": df["target"], "task_weight": df["task_weight"], "networks": df["networks"],
            "latency_s": df["latency_s"],
            "label": per_task_labels(df["task_id"], df["latency_s"]) if len(df) else np.array([]),
            "flat": flats, "n_tokens": ntok, "tokens": toks,
        }
    )
    out.attrs["feature_names"] = flat_feature_names(hardware_names)
    return out


def table_from_traces(traces: Sequence[str], workload: Sequence[float], hardware: Sequence[float], target: str = "", task_id: str = "live") -> FeatureTable:
    """Live candidates of one task (trace JSON) as a feature table, featurized exactly as the
    training records were; no labels (zeros)."""
    flats, toks, ntok = [], [], []
    for tj in traces:
        tokens, decisions = tokenize_trace(tj)
        flats.append(flat_vector(tokens, decisions, workload, hardware))
        toks.append(tokens.reshape(-1))
        ntok.append(len(tokens))
    n = len(traces)
    frame = pd.DataFrame(
        {
            "record_id": [""] * n, "task_id": [task_id] * n, "program_id": [""] * n, "slot": [target] * n, "target": [target] * n,
            "task_weight": np.ones(n, dtype=np.int32), "networks": ["{}"] * n, "latency_s": np.zeros(n), "label": np.zeros(n),
            "flat": flats, "n_tokens": ntok, "tokens": toks,
        }
    )
    return FeatureTable(frame, target)


# -- files: <dir>/<target>.parquet (frame), <target>.json (schema, names), <target>.ms_* (MetaSchedule)

def save_feature_frame(frame: pd.DataFrame, directory: Path, slot: str, extra: dict | None = None) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(directory / f"{slot}.parquet", index=False)
    meta = {"feature_schema": FEATURE_SCHEMA_VERSION, "feature_names": frame.attrs["feature_names"], "valid_records": len(frame), **(extra or {})}
    (directory / f"{slot}.json").write_text(json.dumps(meta, indent=1))
    return meta


def load_feature_table(directory: Path, slot: str, with_ms: bool = False) -> tuple[FeatureTable, dict]:
    """(table, meta) of one dataset slot; `with_ms` also loads MetaSchedule features when present."""
    from ..errors import MissingDataError

    frame_file = Path(directory) / f"{slot}.parquet"
    if not frame_file.exists():
        raise MissingDataError(f"{frame_file}: no features for {slot} (the featurize stage makes them: dvc repro featurize@{slot})")
    frame = pd.read_parquet(frame_file)
    if "slot" not in frame.columns:  # frames written before slots existed
        frame.insert(3, "slot", frame["target"])
    meta = json.loads((Path(directory) / f"{slot}.json").read_text())
    ms = None
    if with_ms:
        from .metaschedule import load_ms_features

        ms = load_ms_features(Path(directory), slot, frame["record_id"])
    return FeatureTable(frame, slot, ms), meta
