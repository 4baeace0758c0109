"""TVM MetaSchedule's own XGBoost cost model, trained offline on the same records: the peer.

Features are MetaSchedule's `PerStoreFeature` vectors (one row of 164 floats per buffer
store of the scheduled program), extracted by TVM's own extractor from each record's program
re-applied to its workload (`extract_ms_features`). Training and prediction go through
`XGBModel`'s own pack-sum objective and prediction (`_train` / `_predict`) with its default
`XGBConfig`: the same model MetaSchedule tunes with, fed our training records instead of its
online measurements. Saved in XGBoost's JSON format (no pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .base import ModelMetadata, read_metadata

MODEL_FILE = "xgb_model.json"
MS_FEATURE_DIM = 164


def extract_ms_features(tasks_by_id: dict, rows: Sequence[tuple[str, str]], target, progress=None) -> list[np.ndarray]:
    """PerStoreFeature matrices for `(task_id, trace_json)` rows, in order (TVM)."""
    import tvm.s_tir.meta_schedule as ms

    from ..tvm_support import apply_trace_json, register_intrinsics_for

    register_intrinsics_for(target)
    extractor = ms.feature_extractor.PerStoreFeature()
    out: list[np.ndarray | None] = [None] * len(rows)
    by_task: dict[str, list[int]] = {}
    for i, (tid, _) in enumerate(rows):
        by_task.setdefault(tid, []).append(i)
    for tid, idx in by_task.items():
        task = tasks_by_id[tid]
        ctx = ms.TuneContext(task.mod, target=target, num_threads=2)  # feature extraction runs in parallel over candidates
        for start in range(0, len(idx), 256):
            chunk = idx[start:start + 256]
            cands = []
            for i in chunk:
                sch = apply_trace_json(task.mod, rows[i][1])
                cands.append(ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
            for i, feat in zip(chunk, extractor.extract_from(ctx, cands)):
                out[i] = feat.numpy().astype(np.float32)
            if progress:
                progress(len(chunk))
    return out  # type: ignore[return-value]


class TVMXGBCostModel:
    def __init__(self, metadata: ModelMetadata, booster=None):
        self.metadata = metadata
        self.booster = booster

    @classmethod
    def create(cls, target: str, feature_schema: str) -> "TVMXGBCostModel":
        return cls(ModelMetadata(family="tvm_xgb", feature_schema=feature_schema, target=target, objective="pack-sum-regression", feature_names=[f"ms{i}" for i in range(MS_FEATURE_DIM)]))

    @staticmethod
    def _xgb_model():
        from tvm.s_tir.meta_schedule.cost_model.xgb_model import XGBModel

        return XGBModel(num_tuning_cores=2, verbose_eval=10**9)

    def fit(self, features: Sequence[np.ndarray], labels: np.ndarray, groups: Sequence[str]) -> None:
        """`labels` are per-task throughputs min_cost/cost, exactly what XGBModel.update trains on."""
        model = self._xgb_model()
        model._train(xs=list(features), ys=np.asarray(labels, dtype=np.float32))  # noqa: SLF001  (TVM's own training path)
        self.booster = model.booster

    def predict(self, features: Sequence[np.ndarray]) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("model is not trained")
        model = self._xgb_model()
        model.booster = self.booster
        return np.asarray(model._predict(xs=list(features)), dtype=np.float64)  # noqa: SLF001

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        self.metadata.write(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "TVMXGBCostModel":
        import xgboost as xgb

        directory = Path(directory)
        booster = xgb.Booster()
        booster.load_model(str(directory / MODEL_FILE))
        return cls(read_metadata(directory), booster)


def pack_features(mats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-record matrices -> (row counts, concatenated rows) for Parquet storage."""
    counts = np.array([len(m) for m in mats], dtype=np.int32)
    flat = np.concatenate([m.reshape(-1, MS_FEATURE_DIM) for m in mats]) if len(mats) else np.zeros((0, MS_FEATURE_DIM), np.float32)
    return counts, flat


def unpack_features(counts: np.ndarray, flat: np.ndarray) -> list[np.ndarray]:
    offs = np.concatenate([[0], np.cumsum(counts)])
    return [flat[offs[i]:offs[i + 1]] for i in range(len(counts))]


__all__ = ["TVMXGBCostModel", "extract_ms_features", "pack_features", "unpack_features"]
