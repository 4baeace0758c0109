"""MetaSchedule's own per-store features (`PerStoreFeature`: 164 floats per buffer store), the
inputs of TVM's XGBoost cost model. TVM is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..records import program_id
from ..safeio import atomic_output
from ..tvm_support import apply_trace_json, register_intrinsics_for, to_plain_json

MS_FEATURE_DIM = 164


def _cache_file(cache_dir: Path, target, task_id: str) -> Path:
    """Features depend on the program, the code generation (target) and TVM, not on the machine
    that measured the program: platforms measured under the same variant share them."""
    import tvm

    key = json.dumps([to_plain_json(target.export()), str(tvm.__version__)], sort_keys=True, default=str)
    return cache_dir / hashlib.sha1(key.encode()).hexdigest()[:16] / f"{task_id}.npz"


def _load_cached(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path) as z:
        return dict(zip(z["keys"].tolist(), unpack_features(z["counts"], z["rows"])))


def _store_cached(path: Path, mats: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(mats)
    counts, rows = pack_features([mats[k] for k in keys])
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, keys=np.array(keys), counts=counts, rows=rows)
    tmp.replace(path)


def extract_ms_features(tasks_by_id: dict, rows: Sequence[tuple[str, str]], target, progress=None, cache_dir: Path | None = None) -> list[np.ndarray]:
    """PerStoreFeature matrices for `(task_id, trace_json)` rows, in order: each trace re-applied
    to its task's workload, then TVM's extractor (TVM). With `cache_dir`, matrices already
    extracted for the same code generation are reused (keyed by the trace's program id)."""
    import tvm.s_tir.meta_schedule as ms

    register_intrinsics_for(target)
    extractor = ms.feature_extractor.PerStoreFeature()
    out: list[np.ndarray | None] = [None] * len(rows)
    by_task: dict[str, list[int]] = {}
    for i, (tid, _) in enumerate(rows):
        by_task.setdefault(tid, []).append(i)
    for tid, all_idx in by_task.items():
        cache_file = _cache_file(cache_dir, target, tid) if cache_dir is not None else None
        cached = _load_cached(cache_file) if cache_file is not None else {}
        idx = []
        for i in all_idx:
            hit = cached.get(program_id(rows[i][1]))
            if hit is not None:
                out[i] = hit
            else:
                idx.append(i)
        if progress and len(idx) < len(all_idx):
            progress(len(all_idx) - len(idx))
        if not idx:
            continue
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
        if cache_file is not None:
            _store_cached(cache_file, {**cached, **{program_id(rows[i][1]): out[i] for i in idx}})
    return out  # type: ignore[return-value]


def extract_from_candidates(context, candidates) -> list[np.ndarray]:
    """PerStoreFeature matrices of live search candidates (inside a MetaSchedule search)."""
    import tvm.s_tir.meta_schedule as ms

    extractor = ms.feature_extractor.PerStoreFeature()
    return [f.numpy().astype(np.float32) for f in extractor.extract_from(context, candidates)]


def pack_features(mats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-record matrices -> (row counts, concatenated rows) for storage."""
    counts = np.array([len(m) for m in mats], dtype=np.int32)
    flat = np.concatenate([m.reshape(-1, MS_FEATURE_DIM) for m in mats]) if len(mats) else np.zeros((0, MS_FEATURE_DIM), np.float32)
    return counts, flat


def unpack_features(counts: np.ndarray, flat: np.ndarray) -> list[np.ndarray]:
    offs = np.concatenate([[0], np.cumsum(counts)])
    return [flat[offs[i]:offs[i + 1]] for i in range(len(counts))]


def save_ms_features(directory: Path, target: str, record_ids: Sequence[str], mats: Sequence[np.ndarray]) -> int:
    """<target>.ms_index.parquet (record id, store count) + <target>.ms_rows.npy; returns rows."""
    counts, flat = pack_features(mats)
    directory.mkdir(parents=True, exist_ok=True)
    # each file atomic; a kill between the two leaves a pair whose counts disagree, which the
    # loader refuses (and the features stage, whose outputs DVC did not record, runs again)
    with atomic_output(directory / f"{target}.ms_rows.npy") as tmp:
        np.save(tmp, flat)
    with atomic_output(directory / f"{target}.ms_index.parquet") as tmp:
        pd.DataFrame({"record_id": list(record_ids), "n_stores": counts}).to_parquet(tmp, index=False)
    return len(flat)


def ms_feature_slots(directory: Path) -> list[str]:
    """The slots of a feature directory that have MetaSchedule features (`save_ms_features`'s pair)."""
    directory = Path(directory)
    suffix = ".ms_index.parquet"
    return sorted(p.name[: -len(suffix)] for p in directory.glob(f"*{suffix}")) if directory.is_dir() else []


def load_ms_features(directory: Path, target: str, record_ids: Sequence[str]) -> list[np.ndarray] | None:
    """The matrices of `record_ids`, in that order; None when the target has none."""
    index_file = directory / f"{target}.ms_index.parquet"
    if not index_file.exists():
        return None
    idx = pd.read_parquet(index_file)
    rows_file = directory / f"{target}.ms_rows.npy"
    flat = np.load(rows_file, allow_pickle=False)
    counts = idx["n_stores"].to_numpy()
    if int(counts.sum()) != len(flat):
        raise UserError(f"{rows_file}: {len(flat)} rows where {index_file.name} counts {int(counts.sum())} (a write was cut short); "
                        "run its stage again (dvc repro --force msfeatures)")
    mats = dict(zip(idx["record_id"], unpack_features(counts, flat)))
    return [mats[r] for r in record_ids]
