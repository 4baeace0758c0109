"""MetaSchedule's own per-store features (`PerStoreFeature`: 164 floats per buffer store), the
inputs of TVM's XGBoost cost model. TVM is imported inside the functions that need it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError
from ..records import program_id
from ..safeio import atomic_output, scratch_file
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


COPY_ROWS = 65_536  # store rows a step when the spool becomes the .npy (16 MB of float32)


def write_ms_features(directory: Path, target: str, batches: Iterable[tuple[Sequence[str], Sequence[np.ndarray]]]) -> int:
    """<target>.ms_index.parquet (record id, store count) + <target>.ms_rows.npy from batches of
    (record ids, matrices), written as they come: a batch at a time in memory, never the slot
    (the rows are spooled to disk and laid out as the .npy once their number is known). Returns
    the store rows written. Both files appear only when every batch is written."""
    directory = Path(directory)
    schema = pa.schema([("record_id", pa.string()), ("n_stores", pa.int32())])
    n_rows = 0
    # each file atomic, the rows renamed first; a kill between the two renames leaves a pair whose
    # counts disagree, which the loader refuses (and the stage, whose outputs DVC did not record,
    # runs again)
    with atomic_output(directory / f"{target}.ms_index.parquet") as index_tmp, \
            atomic_output(directory / f"{target}.ms_rows.npy") as rows_tmp, \
            scratch_file(directory, f"{target}.ms_rows.spool") as spool:
        with pq.ParquetWriter(index_tmp, schema) as index, open(spool, "wb") as out:
            for record_ids, mats in batches:
                counts, flat = pack_features(mats)
                if len(counts) != len(record_ids):
                    raise ValueError(f"{len(record_ids)} record ids for {len(counts)} feature matrices")
                np.ascontiguousarray(flat, dtype="<f4").tofile(out)
                index.write_table(pa.table({"record_id": pa.array(list(record_ids), pa.string()), "n_stores": pa.array(counts, pa.int32())}, schema=schema))
                n_rows += len(flat)
        if not n_rows:
            np.save(rows_tmp, np.zeros((0, MS_FEATURE_DIM), "<f4"))
        else:
            rows = np.lib.format.open_memmap(rows_tmp, mode="w+", dtype="<f4", shape=(n_rows, MS_FEATURE_DIM))
            with open(spool, "rb") as src:
                for start in range(0, n_rows, COPY_ROWS):
                    n = min(COPY_ROWS, n_rows - start)
                    rows[start:start + n] = np.fromfile(src, dtype="<f4", count=n * MS_FEATURE_DIM).reshape(n, MS_FEATURE_DIM)
            rows.flush()
            del rows
    return n_rows


def save_ms_features(directory: Path, target: str, record_ids: Sequence[str], mats: Sequence[np.ndarray]) -> int:
    """`write_ms_features` of one batch held in memory; returns the store rows."""
    return write_ms_features(directory, target, [(record_ids, mats)])


BATCH_RECORDS = 4_096  # records a step of `ms_features_of_records` (their traces and matrices: a few MB)


def valid_task_counts(records_file: Path) -> dict[str, int]:
    """Valid records (error_no 0) a task of a records file, read a row group's two small columns
    at a time."""
    counts: dict[str, int] = {}
    with pq.ParquetFile(records_file) as pf:
        for batch in pf.iter_batches(columns=["task_id", "error_no"]):
            ids = batch.column("task_id").filter(pc.equal(batch.column("error_no"), 0))
            for item in pc.value_counts(ids).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return counts


def ms_features_of_records(records_file: Path, tasks_by_id: dict, target, directory: Path, slot: str, progress=None,
                           cache_dir: Path | None = None) -> int:
    """The features of every valid record of a records file as `slot`'s pair in `directory`
    (`write_ms_features`), `BATCH_RECORDS` records at a time: the file is never held whole.
    Returns the store rows."""

    def batches():
        with pq.ParquetFile(records_file) as pf:
            for batch in pf.iter_batches(BATCH_RECORDS, columns=["record_id", "task_id", "trace", "error_no"]):
                batch = batch.filter(pc.equal(batch.column("error_no"), 0))
                if batch.num_rows:
                    rows = list(zip(batch.column("task_id").to_pylist(), batch.column("trace").to_pylist()))
                    yield batch.column("record_id").to_pylist(), extract_ms_features(tasks_by_id, rows, target, progress, cache_dir=cache_dir)

    return write_ms_features(directory, slot, batches())


def ms_feature_slots(directory: Path) -> list[str]:
    """The slots of a feature directory that have MetaSchedule features (`save_ms_features`'s pair)."""
    directory = Path(directory)
    suffix = ".ms_index.parquet"
    return sorted(p.name[: -len(suffix)] for p in directory.glob(f"*{suffix}")) if directory.is_dir() else []


class MSFeatureReader:
    """One slot's MetaSchedule features opened once: the index read (record ids, store counts),
    the rows file mapped. `take` copies only the asked records' rows into memory, so a store view
    read a fragment at a time pays the index once, not once a fragment."""

    def __init__(self, index_file: Path, rows_file: Path):
        idx = pd.read_parquet(index_file, columns=["record_id", "n_stores"])
        self.index_file = index_file
        self.flat = np.load(rows_file, mmap_mode="r", allow_pickle=False)
        counts = idx["n_stores"].to_numpy()
        if self.flat.ndim != 2 or self.flat.shape[1] != MS_FEATURE_DIM or int(counts.sum()) != len(self.flat):
            raise UserError(f"{rows_file}: {self.flat.shape} rows where {index_file.name} counts {int(counts.sum())} of {MS_FEATURE_DIM} features "
                            "(a write was cut short); run its stage again (dvc repro --force msfeatures)")
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.ids = pd.Index(idx["record_id"])

    def take(self, record_ids: Sequence[str]) -> list[np.ndarray]:
        where = self.ids.get_indexer(pd.Index(record_ids))
        if (where < 0).any():
            lost = [r for r, w in zip(record_ids, where) if w < 0]
            raise UserError(f"{self.index_file}: no MetaSchedule features of {len(lost)} record(s), e.g. {lost[0]} "
                            "(features of other records): run its stage again (dvc repro --force msfeatures)")
        return [np.array(self.flat[self.offsets[i]:self.offsets[i + 1]]) for i in where]


@functools.lru_cache(maxsize=8)
def _open_reader(index_file: str, rows_file: str, stamp: tuple) -> MSFeatureReader:
    return MSFeatureReader(Path(index_file), Path(rows_file))


def ms_feature_reader(directory: Path, target: str) -> MSFeatureReader | None:
    """The reader of `target`'s features in `directory` (None when it has none), shared between
    calls while the files stay as they are (keyed by their size and modification time: a
    rewritten pair is opened anew)."""
    index_file, rows_file = Path(directory) / f"{target}.ms_index.parquet", Path(directory) / f"{target}.ms_rows.npy"
    if not index_file.exists():
        return None
    if not rows_file.exists():
        raise UserError(f"{rows_file}: missing beside {index_file.name} (a write was cut short); run its stage again (dvc repro --force msfeatures)")
    a, b = index_file.stat(), rows_file.stat()
    return _open_reader(str(index_file.resolve()), str(rows_file.resolve()), (a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size))


def load_ms_features(directory: Path, target: str, record_ids: Sequence[str]) -> list[np.ndarray] | None:
    """The matrices of `record_ids`, in that order; None when the target has none. The rows file
    is mapped, not read: only the asked records' rows are copied into memory."""
    reader = ms_feature_reader(directory, target)
    return None if reader is None else reader.take(record_ids)
