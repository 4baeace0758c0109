"""The feature store: a slot's feature table as Arrow columns in Parquet fragments.

Layout: `<features dir>/<slot>/meta.json` (feature schema, names, counts) and
`part-<n>.parquet` fragments. Every fragment holds whole ranking groups (slot, task), one Parquet
row group a task, so any reader takes one group, one fragment or a batch of fragments at a time
and never the whole slot. Columns: the metadata (`table.META_COLUMNS`), `flat` a
fixed_size_list<float32>[d], `tokens` a list<fixed_size_list<float32>[COMPACT_DIM]> (kind index,
annotation index, six numbers a primitive: the dense token matrix is rebuilt exactly). No pickle,
no per-row Python objects.

A store is written into `<slot>.partial/` and renamed into place only when whole, so a reader
never sees half a store; `StoreWriter` keeps finished fragments of an interrupted write
(resumable per fragment).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MissingDataError
from .metaschedule import load_ms_features
from .program import COMPACT_DIM
from .table import FEATURE_SCHEMA_VERSION, META_COLUMNS, FeatureTable, MissingFeaturesError

META_FILE = "meta.json"
FRAGMENT_ROWS = 200_000  # rows a fragment holds at most (whole tasks: a task larger than this is one fragment)
MIN_ROW_GROUP = 4096  # small tasks share a Parquet row group up to this many rows (whole tasks still)
_META_TYPES = {
    "record_id": pa.string(), "task_id": pa.string(), "program_id": pa.string(), "slot": pa.string(), "target": pa.string(),
    "task_weight": pa.int32(), "networks": pa.string(), "latency_s": pa.float64(), "label": pa.float64(), "n_tokens": pa.int32(),
}


def store_dir(directory: Path, slot: str) -> Path:
    return Path(directory) / slot


def to_arrow(table: FeatureTable) -> pa.Table:
    """A FeatureTable's rows as one Arrow table of the store's columns."""
    cols = {c: pa.array(table.frame[c].to_numpy(), type=_META_TYPES[c], from_pandas=True) for c in META_COLUMNS}
    flat = table.flat
    d = flat.shape[1] if flat.ndim == 2 else 0
    cols["flat"] = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(flat, dtype=np.float32).reshape(-1)), d)
    values = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(table.token_rows, dtype=np.float32).reshape(-1)), COMPACT_DIM)
    cols["tokens"] = pa.ListArray.from_arrays(pa.array(table.token_offsets.astype(np.int32)), values)
    return pa.table(cols)


def from_arrow(data: pa.Table, slot: str = "", feature_names: list[str] | None = None, feature_schema: str = FEATURE_SCHEMA_VERSION) -> FeatureTable:
    """The store's columns (any subset of rows) as a FeatureTable, without per-row objects."""
    frame = data.select([c for c in META_COLUMNS if c in data.column_names]).to_pandas()
    n = data.num_rows
    flat_col = data.column("flat").combine_chunks() if n else None
    if flat_col is not None and len(flat_col):
        d = flat_col.type.list_size
        flat = flat_col.flatten().to_numpy(zero_copy_only=False).reshape(n, d)
    else:
        flat = np.zeros((0, len(feature_names or [])), np.float32)
    tok = data.column("tokens").combine_chunks() if n and "tokens" in data.column_names else None
    if tok is not None and len(tok):
        offsets = tok.offsets.to_numpy().astype(np.int64)
        rows = tok.values.flatten().to_numpy(zero_copy_only=False).reshape(-1, COMPACT_DIM)[offsets[0]:offsets[-1]]
        offsets = offsets - offsets[0]
    else:
        offsets, rows = np.zeros(n + 1, np.int64), np.zeros((0, COMPACT_DIM), np.float32)
    return FeatureTable(frame, slot, flat=flat, token_offsets=offsets, token_rows=rows, feature_names=feature_names, feature_schema=feature_schema)


def store_schema(meta: dict) -> str:
    """The feature schema a store's meta names ("" for a store that names none: an unknown layout,
    which no model of this code accepts)."""
    return str(meta.get("feature_schema", ""))


class FragmentWriter:
    """Writes one fragment from any number of tables (each of whole ranking groups, rows of a
    group together), renamed into place on `close`: Parquet row groups of whole groups, small
    groups packed up to `min_row_group` rows (a row group per 100-program task would cost more in
    metadata than in data). Memory: one table at a time."""

    def __init__(self, path: Path, min_row_group: int = MIN_ROW_GROUP):
        self.path, self.tmp, self.min_row_group = Path(path), Path(path).with_name(Path(path).name + ".tmp"), min_row_group
        self.writer, self.rows = None, 0

    def write(self, table: FeatureTable) -> None:
        data = to_arrow(table)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, data.schema, compression="zstd")
        groups = table.groups
        cuts = np.concatenate([[0], np.flatnonzero(groups[1:] != groups[:-1]) + 1, [len(groups)]]) if len(groups) else np.array([0, 0])
        begin = 0
        for end in cuts[1:]:
            if end - begin >= self.min_row_group or end == len(groups):
                self.writer.write_table(data.slice(int(begin), int(end - begin)), row_group_size=max(int(end - begin), 1))
                begin = end
        self.rows += len(table)

    def close(self) -> int:
        if self.writer is None:  # nothing written: an empty fragment still has the store's columns
            self.writer = pq.ParquetWriter(self.tmp, to_arrow(FeatureTable(pd.DataFrame({c: [] for c in META_COLUMNS}), "")).schema, compression="zstd")
        self.writer.close()
        os.replace(self.tmp, self.path)
        return self.rows


def write_fragment(table: FeatureTable, path: Path, min_row_group: int = MIN_ROW_GROUP) -> int:
    """One fragment of one in-memory table (FragmentWriter)."""
    writer = FragmentWriter(path, min_row_group)
    writer.write(table)
    return writer.close()


def _group_order(table: FeatureTable) -> np.ndarray:
    """Row order with each ranking group's rows together, groups in first-appearance order."""
    return np.concatenate([rows for _, rows in table.iter_groups()]) if len(table) else np.zeros(0, np.int64)


class StoreWriter:
    """Writes a slot's store fragment by fragment into `<slot>.partial/`; `commit` renames it into
    place. Fragments already written by an interrupted run with the same `plan` are kept
    (`done`), so a re-run does only the rest."""

    def __init__(self, directory: Path, slot: str, plan: dict | None = None, fresh: bool = False):
        self.final = store_dir(directory, slot)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.plan = dict(plan or {})
        plan_file = self.partial / "plan.json"
        if self.partial.exists() and (fresh or not plan_file.exists() or json.loads(plan_file.read_text()) != self.plan):
            shutil.rmtree(self.partial)  # another run's fragments: not ours to resume
        self.partial.mkdir(parents=True, exist_ok=True)
        plan_file.write_text(json.dumps(self.plan, sort_keys=True))
        for stale in self.partial.glob("*.tmp"):  # a fragment cut short by a kill
            stale.unlink()

    def fragment_path(self, index: int) -> Path:
        return self.partial / f"part-{index:05d}.parquet"

    def done(self, index: int) -> bool:
        return self.fragment_path(index).exists()

    def write(self, index: int, table: FeatureTable) -> int:
        return write_fragment(table, self.fragment_path(index))

    def fragment_writer(self, index: int) -> FragmentWriter:
        return FragmentWriter(self.fragment_path(index))

    def commit(self, meta: dict) -> dict:
        """meta.json beside the fragments, then the whole store renamed into place."""
        frags = sorted(self.partial.glob("part-*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in frags)
        meta = {"feature_schema": FEATURE_SCHEMA_VERSION, **meta, "valid_records": rows, "fragments": len(frags)}
        (self.partial / "plan.json").unlink(missing_ok=True)
        (self.partial / META_FILE).write_text(json.dumps(meta, indent=1))
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.partial, self.final)
        return meta

    def abandon(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def write_feature_store(table: FeatureTable, directory: Path, slot: str, extra: dict | None = None, rows_per_fragment: int = FRAGMENT_ROWS) -> dict:
    """A whole in-memory table as a slot's store (fragments of whole groups); returns meta."""
    table = table.take(_group_order(table))
    writer = StoreWriter(directory, slot, fresh=True)
    groups = table.groups
    starts = np.concatenate([[0], np.flatnonzero(groups[1:] != groups[:-1]) + 1]) if len(groups) else np.array([0])
    index, begin = 0, 0
    for s in list(starts[1:]) + [len(table)]:
        if s - begin >= rows_per_fragment or s == len(table):
            writer.write(index, table.take(np.arange(begin, s)))
            index, begin = index + 1, s
    return writer.commit({"feature_names": table.feature_names or [], "feature_schema": table.feature_schema, **(extra or {})})


def read_meta(directory: Path, slot: str) -> dict:
    path = store_dir(directory, slot) / META_FILE
    if not path.exists():
        raise MissingDataError(f"{store_dir(directory, slot)}: no features for {slot} (the featurize stage makes them: dvc repro featurize@{slot})")
    return json.loads(path.read_text())


def fragment_paths(directory: Path, slot: str) -> list[Path]:
    """The slot's fragments, in order; each holds whole (slot, task) groups."""
    read_meta(directory, slot)
    return sorted(store_dir(directory, slot).glob("part-*.parquet"))


NUMBER_COLUMNS = ("flat", "tokens")
_CATEGORICAL = ("task_id", "slot", "target", "networks")


def read_fragment(path: Path, slot: str | None = None, feature_names: list[str] | None = None, inputs: Iterable[str] = NUMBER_COLUMNS,
                  feature_schema: str | None = None) -> FeatureTable:
    """A fragment as a FeatureTable; `inputs` ("flat", "tokens"): the numbers to read (a tree
    model reads no tokens: a table without them has no token rows). Names and schema not given
    are read from the store's meta beside the fragment."""
    path = Path(path)
    if (feature_names is None or feature_schema is None) and (path.parent / META_FILE).exists():
        meta = json.loads((path.parent / META_FILE).read_text())
        feature_names = meta.get("feature_names") if feature_names is None else feature_names
        feature_schema = store_schema(meta) if feature_schema is None else feature_schema
    columns = list(META_COLUMNS) + [c for c in NUMBER_COLUMNS if c in set(inputs) or c == "flat"]
    return from_arrow(pq.read_table(path, columns=columns), slot if slot is not None else path.parent.name, feature_names,
                      FEATURE_SCHEMA_VERSION if feature_schema is None else feature_schema)


def iter_fragments(directory: Path, slot: str) -> Iterator[FeatureTable]:
    meta = read_meta(directory, slot)
    for f in fragment_paths(directory, slot):
        yield read_fragment(f, slot, meta.get("feature_names"), feature_schema=store_schema(meta))


def iter_groups(directory: Path, slot: str) -> Iterator[FeatureTable]:
    """One (slot, task) group at a time (a Parquet row group holds one or a few whole groups)."""
    meta = read_meta(directory, slot)
    for f in fragment_paths(directory, slot):
        pf = pq.ParquetFile(f)
        for i in range(pf.metadata.num_row_groups):
            part = from_arrow(pf.read_row_group(i), slot, meta.get("feature_names"), store_schema(meta))
            for _, rows in part.iter_groups():
                yield part.take(rows)


def read_columns(directory: Path, slot: str, columns: Iterable[str]) -> pd.DataFrame:
    """Only `columns` of every row (ids, task ids, labels: what a stage holds whole)."""
    parts = [pq.read_table(f, columns=list(columns)).to_pandas() for f in fragment_paths(directory, slot)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))


def store_hash(directory: Path, slot: str) -> str:
    """One digest of a store's meta and fragments (what a validation verdict and a model card name)."""
    h = hashlib.md5()
    root = store_dir(directory, slot)
    for f in [root / META_FILE] + fragment_paths(directory, slot):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_feature_table(directory: Path, slot: str, with_ms: bool = False) -> tuple[FeatureTable, dict]:
    """(table, meta) of one dataset slot, whole in memory (flat matrix and compact tokens); `with_ms`
    also loads MetaSchedule features when present. Stages that must not hold a slot whole read
    fragments or groups instead."""
    meta = read_meta(directory, slot)
    parts = [pq.read_table(f) for f in fragment_paths(directory, slot)]
    data = pa.concat_tables(parts) if parts else to_arrow(FeatureTable(pd.DataFrame({c: [] for c in META_COLUMNS}), slot))
    table = from_arrow(data, slot, meta.get("feature_names"), store_schema(meta))
    if with_ms:
        table.ms_features = load_ms_features(Path(directory), slot, table.frame["record_id"])
    return table, meta


class StoreView:
    """A slot's store (or some of its rows) as a table too large to hold: the metadata whole
    (ids, tasks, labels: tens of bytes a row), the numbers read a fragment at a time.

    It answers what learners and metrics ask of a FeatureTable (`frame`, `labels`, `groups`,
    `task_weights`, `slot`, `feature_names`, `target_id`) and yields its rows as FeatureTables
    of one fragment each (`iter_tables`), whole ranking groups in each. Families that can learn
    from batches (LightGBM through `lightgbm.Sequence`) take it directly; `materialize` gives the
    whole FeatureTable for those that cannot.
    """

    def __init__(self, directory: Path, slot: str, rows: np.ndarray | None = None, *, _parts=None, _meta: dict | None = None):
        self.directory, self.slot = Path(directory), slot
        self.meta = _meta if _meta is not None else read_meta(directory, slot)
        self.feature_names = self.meta.get("feature_names")
        self.feature_schema = store_schema(self.meta)
        if _parts is None:
            paths = fragment_paths(directory, slot)
            # repeated strings (slot, target, task, networks) as categories: tens of bytes a row in all
            frames = [pq.read_table(f, columns=list(META_COLUMNS), read_dictionary=list(_CATEGORICAL)).to_pandas() for f in paths]
            sizes = [len(f) for f in frames]
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in META_COLUMNS})
            for c in _CATEGORICAL:  # one category set across fragments
                if c in frame and not isinstance(frame[c].dtype, pd.CategoricalDtype):
                    frame[c] = frame[c].astype("category")
            fragment = np.repeat(np.arange(len(paths), dtype=np.int32), sizes)
            local = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes]) if sizes else np.zeros(0, np.int64)
            _parts = (paths, frame, fragment, local)
        self.paths, frame, fragment, local = _parts
        if rows is not None:
            rows = np.sort(np.asarray(rows, dtype=np.int64))  # fragment order, whole groups stay together
            frame, fragment, local = frame.iloc[rows].reset_index(drop=True), fragment[rows], local[rows]
        self.frame, self.fragment, self.local = frame, fragment, local

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def target_id(self) -> str:
        return str(self.frame["target"].iloc[0]) if len(self.frame) else ""

    @property
    def platform_id(self) -> str:
        return self.target_id.split(".")[0]

    @property
    def kind(self) -> str:
        """"gpu" or "cpu", as FeatureTable.kind: from the first row's hardware features."""
        if not len(self):
            return "cpu"
        first = pq.ParquetFile(self.paths[int(self.fragment[0])]).read_row_group(0, columns=list(META_COLUMNS) + ["flat"]).slice(0, 1)
        return from_arrow(first, self.slot, self.feature_names, self.feature_schema).kind  # one slot, one target: any row says it

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy()

    @property
    def groups(self) -> np.ndarray:
        return (self.frame["slot"].astype(str) + "|" + self.frame["task_id"].astype(str)).to_numpy()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.frame["task_id"], self.frame["task_weight"].astype(float)))

    def require(self, inputs, who: str) -> None:
        if "ms_features" in inputs:
            raise MissingFeaturesError(f"{who} needs MetaSchedule features, which a store view does not carry: materialize() it")

    @staticmethod
    def concat(views: Iterable["StoreView"], slot: str) -> "StoreView":
        """Several slots' views as one (by_hardware's training side: every other platform pooled):
        still only their metadata in memory, their fragments read one at a time."""
        views = list(views)
        if not views:
            raise ValueError("StoreView.concat of no views")
        names = {tuple(v.feature_names or ()) for v in views}
        if len(names) > 1:
            raise ValueError(f"StoreView.concat: the slots {[v.slot for v in views]} have different feature names")
        if len({v.feature_schema for v in views}) > 1:
            raise ValueError(f"StoreView.concat: the slots {[v.slot for v in views]} have different feature schemas "
                             f"{sorted({v.feature_schema for v in views})}: re-run their featurize stages with one tensorcost version")
        paths, frames, fragment, base = [], [], [], 0
        for v in views:
            paths += list(v.paths)
            frames.append(v.frame)
            fragment.append(np.asarray(v.fragment, dtype=np.int32) + base)
            base += len(v.paths)
        frame = pd.concat(frames, ignore_index=True)
        for c in _CATEGORICAL:  # the union of the slots' categories (concat of unequal categories gives objects)
            if c in frame and not isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype("category")
        parts = (paths, frame, np.concatenate(fragment), np.concatenate([np.asarray(v.local, dtype=np.int64) for v in views]))
        return StoreView(views[0].directory, slot, _parts=parts, _meta=views[0].meta)

    def take(self, idx) -> "StoreView":
        """The view's rows `idx` (a view still: nothing is read)."""
        idx = np.asarray(idx, dtype=np.int64)
        return StoreView(self.directory, self.slot, idx, _parts=(self.paths, self.frame, self.fragment, self.local), _meta=self.meta)

    def iter_tables(self, inputs: Iterable[str] = NUMBER_COLUMNS) -> Iterator[FeatureTable]:
        """The view's rows, one fragment's worth at a time, in the view's order (`inputs`: the
        numbers read, as `read_fragment`)."""
        bounds = np.flatnonzero(np.diff(self.fragment)) + 1 if len(self) else np.array([], np.int64)
        for start, end in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(self)]])):
            if end <= start:
                continue
            part = read_fragment(self.paths[int(self.fragment[start])], self.slot, self.feature_names, inputs, self.feature_schema)
            local = self.local[start:end]
            if len(local) != len(part) or np.any(local != np.arange(len(part))):
                part = part.take(local)
            # the view's labels, not the file's: a view relabelled (a pruned variant: labels from
            # its kept rows alone) trains on what it says
            part.frame["label"] = self.frame["label"].to_numpy()[start:end]
            if "ms_features" in inputs:  # the fragment's rows only: mapped, never the slot's whole file
                self._attach_ms_features(part)
            yield part

    def materialize(self, inputs: Iterable[str] = NUMBER_COLUMNS) -> FeatureTable:
        """The view's rows whole in memory; with "ms_features" in `inputs` also their MetaSchedule
        features (the msfeatures stage's files beside the store; None where a slot has none)."""
        inputs = tuple(inputs)
        parts = list(self.iter_tables(inputs))
        if parts:
            return FeatureTable.concat(parts, self.slot)  # ms_features: each fragment's, concatenated (None if any slot has none)
        table = FeatureTable(self.frame.copy(), self.slot, feature_names=self.feature_names, feature_schema=self.feature_schema)
        if "ms_features" in inputs:
            self._attach_ms_features(table)
        return table

    def _attach_ms_features(self, table: FeatureTable) -> None:
        """`table.ms_features`: its rows' MetaSchedule features, read from the msfeatures stage's
        files beside the store by slot and record id; None where a slot has none."""
        slots = table.frame["slot"].astype(str).to_numpy()
        ids = table.frame["record_id"].astype(str).to_numpy()
        ms: list | None = [None] * len(table)
        for s in dict.fromkeys(slots):
            rows = np.flatnonzero(slots == s)
            mats = load_ms_features(self.directory, s, ids[rows])
            if mats is None:
                ms = None
                break
            for i, m in zip(rows, mats):
                ms[i] = m
        table.ms_features = ms
