"""Featurize a records file into a slot's feature store, out of core and in parallel.

Work items are runs of whole tasks (labels are per task), at most `rows_per_fragment` rows each;
each is read from the records Parquet on its own (only the row groups it covers), featurized and
written as one fragment by a worker process. A killed run resumes: fragments already written
under the same plan (records file, hardware, sizes) are kept.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..safeio import die_with_parent
from .store import FRAGMENT_ROWS, StoreWriter
from .table import featurize_records

RECORD_COLUMNS = ["record_id", "task_id", "program_id", "target", "task_weight", "networks", "latency_s", "error_no",
                  "trace", "op_kind", "shapes", "flops", "bytes_moved"]


SUB_BATCH_ROWS = 16384  # rows a worker featurizes at once (whole tasks): its memory, whatever the fragment's size


@dataclass(frozen=True)
class WorkItem:
    index: int
    tasks: tuple  # each task's row numbers in the records file (ascending), tasks in first-appearance order

    @property
    def rows(self) -> np.ndarray:
        return np.sort(np.concatenate(self.tasks)) if self.tasks else np.zeros(0, np.int64)

    @property
    def n_rows(self) -> int:
        return sum(len(t) for t in self.tasks)

    def sub_batches(self, rows: int = SUB_BATCH_ROWS):
        """Whole tasks, about `rows` rows at a time (a bigger task alone)."""
        batch, size = [], 0
        for t in self.tasks:
            if batch and size + len(t) > rows:
                yield batch
                batch, size = [], 0
            batch.append(t)
            size += len(t)
        if batch:
            yield batch


def plan_work(task_ids: np.ndarray, rows_per_fragment: int) -> list[WorkItem]:
    """Whole tasks packed into items of at most `rows_per_fragment` rows (a bigger task alone),
    tasks in first-appearance order, each task's rows in file order."""
    if not len(task_ids):
        return []
    uniq, first, inverse = np.unique(task_ids, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    items, current, size = [], [], 0
    for g in np.argsort(first):
        if current and size + counts[g] > rows_per_fragment:
            items.append(tuple(current))
            current, size = [], 0
        current.append(order[bounds[g]:bounds[g + 1]])
        size += int(counts[g])
    items.append(tuple(current))
    return [WorkItem(i, tasks) for i, tasks in enumerate(items)]


_ROW_GROUPS: dict = {}  # the last row groups read by this process: consecutive sub-batches share them


def _row_group(pf, path: Path, index: int, columns: Sequence[str]) -> pa.Table:
    st = Path(path).stat()  # the file's identity, not its name: a rewritten file is another file
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, index, tuple(columns))
    if key not in _ROW_GROUPS:
        if len(_ROW_GROUPS) >= 2:
            _ROW_GROUPS.pop(next(iter(_ROW_GROUPS)))
        _ROW_GROUPS[key] = pf.read_row_group(index, columns=list(columns))
    return _ROW_GROUPS[key]


def task_codes(path: Path) -> np.ndarray:
    """Each row's task as an int32 code (read dictionary-encoded: no Python string a row, and
    forked workers share no per-row objects)."""
    col = pq.read_table(path, columns=["task_id"], read_dictionary=["task_id"]).column("task_id")
    if not len(col):
        return np.zeros(0, np.int32)
    col = col.unify_dictionaries()
    return np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks]).astype(np.int32)


def read_rows(path: Path, rows: np.ndarray, columns: Sequence[str] = RECORD_COLUMNS) -> pa.Table:
    """Rows `rows` (ascending) of a Parquet file, reading only the row groups that hold them
    (each once for consecutive calls: the last two are kept)."""
    pf = pq.ParquetFile(path)
    sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group_of = np.searchsorted(starts, rows, side="right") - 1
    parts = []
    for g in np.unique(group_of):
        local = rows[group_of == g] - starts[g]
        data = _row_group(pf, Path(path), int(g), columns)
        if len(local) == data.num_rows and np.all(np.diff(local) == 1):
            parts.append(data)
        else:
            parts.append(data.take(pa.array(local)))
    if not parts:
        return pf.schema_arrow.empty_table().select(list(columns))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _featurize_item(args) -> tuple[int, int, int]:
    """Worker: one work item -> one fragment, a sub-batch of whole tasks at a time. Returns
    (index, records read, feature rows)."""
    records_path, item, hw_features, hw_names, slot, target_override, writer = args
    out = writer.fragment_writer(item.index)
    read = 0
    for tasks in item.sub_batches():
        rows = np.concatenate(tasks)
        data = read_rows(records_path, np.sort(rows))
        read += data.num_rows
        if target_override is not None:  # the slot's real target id (bundled files keep their measured label)
            data = data.set_column(data.column_names.index("target"), "target", pa.array([target_override] * data.num_rows, pa.string()))
        table = featurize_records(data, hw_features, hw_names, slot=slot)
        out.write(table.take(np.concatenate([r for _, r in table.iter_groups()])) if len(table) else table)  # each task's rows together
    return item.index, read, out.close()


def featurize_file(records_path: Path, directory: Path, slot: str, hw_features: Sequence[float], hw_names: Sequence[str], *,
                   workers: int | None = None, rows_per_fragment: int = FRAGMENT_ROWS, target: str | None = None, progress: bool = True) -> StoreWriter:
    """Featurize `records_path` into `<directory>/<slot>.partial/` fragments (resumable); the
    caller validates and `commit`s (or `abandon`s) the returned writer."""
    records_path = Path(records_path)
    task_ids = task_codes(records_path)
    items = plan_work(task_ids, rows_per_fragment)
    st = records_path.stat()
    plan = {"records": str(records_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "rows_per_fragment": rows_per_fragment,
            "hardware": [float(x) for x in hw_features], "slot": slot, "target": target}
    writer = StoreWriter(directory, slot, plan)
    todo = [it for it in items if not writer.done(it.index)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    args = [(records_path, it, list(hw_features), list(hw_names), slot, target, writer) for it in todo]
    with tqdm(total=len(task_ids), initial=len(task_ids) - sum(it.n_rows for it in todo), desc=f"featurize {slot}", unit="rec",
              disable=not progress, mininterval=1.0) as bar:
        if workers == 1:
            for a in args:
                bar.update(_featurize_item(a)[1])
        else:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_worker_init) as pool:
                pending = {pool.submit(_featurize_item, a) for a in args[: 2 * workers]}
                queue = args[2 * workers:]
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        bar.update(f.result()[1])
                        if queue:
                            pending.add(pool.submit(_featurize_item, queue.pop(0)))
    return writer


def _worker_init() -> None:
    die_with_parent()  # a kill -9 of the featurize stage takes its workers with it
