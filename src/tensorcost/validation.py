"""Great Expectations suites that guard the data between stages: the records table (validate
stage) and the feature table (featurize stage, before it is written). GX lives only here.

Checks GX cannot express on list or JSON cells (`latencies`, `trace`, `flat`, `tokens`) run on
derived columns: `*_problem` is null for a good row and names the record and the defect otherwise,
so the failure examples say which rows are bad and why.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from orjson import loads as _orjson_loads

from .errors import MissingDataError, UserError
from .features import FEATURE_SCHEMA_VERSION, FeatureTable, read_fragment, store_hash
from .features.table import FRAME_COLUMNS
from .params_io import md5_file
from .records import COLUMNS
from .safeio import write_text

SUITE_NAME = "records"
PARTITION_ROWS = 100_000  # validate_records_file: rows a partition (whole tasks) aims at
FEATURES_SUITE_NAME = "features"


@dataclass
class ValidationSummary:
    success: bool
    target: str
    n_rows: int
    failures: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    suite: str = SUITE_NAME
    failed_partitions: list[dict] | None = None  # validate_records_file: the partitions that failed (None: not partitioned)

    def to_dict(self) -> dict:
        out = {"suite": self.suite, "success": self.success, "target": self.target, "n_rows": self.n_rows, "failures": self.failures,
               "statistics": self.statistics}
        if self.failed_partitions is not None:
            out["failed_partitions"] = self.failed_partitions
        return out

    def readable(self) -> str:
        head = f"{self.suite} validation for {self.target}: {'PASSED' if self.success else 'FAILED'} ({self.n_rows} rows)"
        lines = [head]
        for f in self.failures:
            where = f" in {f['partition']}" if f.get("partition") else ""
            lines.append(f"  - {f['expectation']} on {f.get('column') or '(table)'}{where}: {f['unexpected_count']} rows; examples: {f['examples']}")
        return "\n".join(lines)

    def failed_expectations(self) -> str:
        """The failures on one line (for a UserError)."""
        return "; ".join(f"{f['expectation']} on {f.get('column') or '(table)'} ({f['unexpected_count']} rows)" for f in self.failures)


MIN_LATENCY_S = 1e-9  # one nanosecond: no measured program is faster; a smaller time is a unit error or garbage
MAX_LATENCY_S = 3600.0  # an hour: beyond any run timeout a measurement protocol sets


def _latencies_problem(record_id: str, values, latency_s=None) -> str | None:
    """Why a record's timed repeats are unusable (empty, NaN/inf, outside [MIN_LATENCY_S,
    MAX_LATENCY_S]) or contradict its `latency_s` (their mean, to 1e-6), or None."""
    vals = [float(v) for v in (values if values is not None else [])]
    if not vals or not all(math.isfinite(v) and MIN_LATENCY_S <= v <= MAX_LATENCY_S for v in vals):
        return f"{record_id}: latencies {vals[:5]} (each a finite time in [{MIN_LATENCY_S:g}, {MAX_LATENCY_S:g}] s)"
    if latency_s is not None and isinstance(latency_s, (int, float)) and math.isfinite(latency_s):
        mean = math.fsum(vals) / len(vals)
        if abs(mean - latency_s) > 1e-6 * max(abs(latency_s), mean):
            return f"{record_id}: latency_s {latency_s!r} is not the mean of its repeats ({mean!r})"
    return None


def _trace_problem(record_id: str, trace) -> str | None:
    """Why a trace cannot be featurized (not JSON, not a JSON list), or None. A null trace is
    reported by its own not-null expectation."""
    if trace is None:
        return None
    try:  # orjson accepts a subset of what json does, 5-10x faster: json.loads words the failures
        return None if isinstance(_orjson_loads(trace), list) else _trace_problem_slow(record_id, trace)
    except Exception:  # noqa: BLE001  (orjson.JSONDecodeError, TypeError)
        return _trace_problem_slow(record_id, trace)


def _trace_problem_slow(record_id: str, trace) -> str | None:
    try:
        obj = json.loads(trace)
    except (TypeError, ValueError) as exc:
        return f"{record_id}: trace is not JSON ({exc})"
    return None if isinstance(obj, list) else f"{record_id}: trace is a JSON {type(obj).__name__}, not a list"


def _nonfinite_problem(record_id: str, values, names: Sequence[str] | None = None) -> str | None:
    """Which entries of a feature vector are NaN/inf, or None."""
    arr = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if not len(bad):
        return None
    shown = ", ".join(f"{names[i] if names is not None and i < len(names) else i}={arr[i]}" for i in bad[:3])
    return f"{record_id}: {len(bad)} non-finite ({shown})"


def _expectations(target: str):
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    measured, failed = Column("error_no") == 0, Column("error_no") != 0

    # `latencies` (a list column) is replaced by `latencies_problem` before validation, `trace`
    # gets `trace_problem`; every other column must be there.
    columns = [c for c in COLUMNS if c != "latencies"] + ["latencies_problem", "trace_problem"]
    exps = [gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True), gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    for col in ("record_id", "source", "target", "task_id", "task_name", "program_id", "trace", "error_no", "measured_at", "tvm_version", "op_kind", "flops"):
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    exps += [
        gxe.ExpectColumnValuesToBeUnique(column="record_id"),
        # One hardware id per target: a records file must hold exactly the target it claims.
        gxe.ExpectColumnValuesToBeInSet(column="target", value_set=[target]),
        gxe.ExpectColumnValuesToBeInSet(column="error_no", value_set=list(range(0, 9))),
        gxe.ExpectColumnValuesToNotBeNull(column="latency_s", row_condition=measured),
        gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=MIN_LATENCY_S, max_value=MAX_LATENCY_S, row_condition=measured),
        gxe.ExpectColumnValuesToBeNull(column="latency_s", row_condition=failed),
        gxe.ExpectColumnValuesToBeBetween(column="flops", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="task_weight", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="source", value_set=["tvm-metaschedule", "tenset"]),
        gxe.ExpectColumnValuesToBeBetween(column="measured_at", min_value=0),
        gxe.ExpectColumnValuesToMatchRegex(column="program_id", regex=r"^[0-9a-f]{16}$"),
        gxe.ExpectColumnValuesToMatchRegex(column="task_id", regex=r"^[0-9a-f]{16}$"),
        gxe.ExpectColumnValuesToNotBeNull(column="error_msg", row_condition=failed),
        # Every timed repeat of a measured record is a finite, positive time (latency_s is their mean).
        gxe.ExpectColumnValuesToBeNull(column="latencies_problem", row_condition=measured),
        # featurize parses every trace: a bad one is a records defect, reported here.
        gxe.ExpectColumnValuesToBeNull(column="trace_problem"),
    ]
    return exps


def validate_records(df: pd.DataFrame, target: str, docs_dir: Path | None = None) -> ValidationSummary:
    """Run the records suite on a frame; optionally build HTML Data Docs into `docs_dir`."""
    # GX's between-check does not see inf as out of range on every backend: turn it into a
    # clear failure by mapping non-finite latencies of measured rows to -1.
    df = _records_frame(df.copy())
    success, failures = _run_suite(df, SUITE_NAME, target, _expectations(target), docs_dir)
    return ValidationSummary(success=success, target=target, n_rows=len(df), failures=failures, statistics=_records_statistics(df))


def validate_records_file(path: str | Path, target: str, docs_dir: Path | None = None, batch_rows: int = PARTITION_ROWS) -> ValidationSummary:
    """Run the records suite on a records Parquet file partition by partition, every row checked,
    never holding the file as one frame: the verdict `validate_records` gives on the whole table.

    A partition is a group of whole tasks of about `batch_rows` rows (one task larger than that is
    a partition alone), read with pyarrow in batches. Tasks stored contiguously (what the importer
    and the records stage write) are read as row ranges; otherwise one pass sorts the rows into
    per-partition spool files first. Each partition runs the suite in one GX context, except
    `record_id` uniqueness, which spans partitions: it is checked over the whole file (64-bit hashes
    of every id, then the candidate duplicates compared exactly), counted as GX counts it. Failures
    are merged by expectation (counts summed, the first examples kept) and each names its
    partitions (`partition`: index, `rows`: the row range or None, `tasks`: how many, first and last
    task id); `failed_partitions` lists them. Data Docs (with `docs_dir`) are built once: for the
    first failing partition, or for the first partition when all passed.
    """
    import great_expectations as gx

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    parts, codes = _task_partitions(path, batch_rows) if "task_id" in names else (_row_partitions(pf.metadata.num_rows, batch_rows), None)
    exps = _expectations(target)
    unique_at = next(i for i, e in enumerate(exps) if e.expectation_type == "expect_column_values_to_be_unique" and e.column == "record_id")
    unique_exp = exps.pop(unique_at)  # checked over the whole file below
    order = [(e.expectation_type, getattr(e, "column", None)) for e in exps]
    runner = _SuiteRunner(gx.get_context(mode="ephemeral"), SUITE_NAME, target, exps, None)
    merged: dict[tuple, dict] = {}
    failed: list[dict] = []
    stats = {"valid_records": 0, "error_records": 0, "tasks": 0}
    n_rows, first_frame, first_failing = 0, None, None
    for i, (desc, df) in enumerate(_partition_frames(pf, parts, codes)):
        df = _records_frame(df)
        n_rows += len(df)
        for k, v in _records_statistics(df).items():
            stats[k] += v
        ok, failures = runner.run(df)
        if i == 0 and docs_dir is not None:
            first_frame = df
        if not ok:
            failed.append(desc)
            if first_failing is None and docs_dir is not None:
                first_failing = df
        for f in failures:
            m = merged.setdefault((f["expectation"], f.get("column")), {**f, "unexpected_count": 0, "examples": [], "partitions": []})
            m["unexpected_count"] += f["unexpected_count"]
            m["examples"] = (m["examples"] + f["examples"])[:5]
            m["partitions"].append(desc)
        del df
    dup = _duplicate_ids(pf, parts, codes)
    if dup is not None:
        merged[(unique_exp.expectation_type, "record_id")] = dup
        failed += [d for d in dup["partitions"] if d not in failed]
        failed.sort(key=lambda d: d["partition"])
    order.insert(unique_at, (unique_exp.expectation_type, "record_id"))
    failures = [merged[k] for k in sorted(merged, key=lambda k: order.index(k) if k in order else len(order))]
    stats["partitions"] = len(parts)
    if docs_dir is not None:  # once: the first failing partition, or the first one

        docs_frame = first_failing if first_failing is not None else first_frame
        with tempfile.TemporaryDirectory(prefix="tensorcost-gx-") as project:
            ctx = gx.get_context(mode="file", project_root_dir=project)
            _SuiteRunner(ctx, SUITE_NAME, target, _expectations(target), Path(docs_dir).resolve()).run(docs_frame)
    return ValidationSummary(success=not failures, target=target, n_rows=n_rows, failures=failures, statistics=stats, failed_partitions=failed)


def _row_partitions(n: int, batch_rows: int) -> list[dict]:
    return [{"partition": i, "rows": [s, min(n, s + batch_rows)], "tasks": 0, "first_task": None, "last_task": None}
            for i, s in enumerate(range(0, max(n, 1), batch_rows))]


def _task_partitions(path, batch_rows: int) -> tuple[list[dict], np.ndarray | None]:
    """Partitions of whole tasks, and None when every task's rows are contiguous (row ranges),
    else each row's partition index."""
    col = pq.ParquetFile(path, read_dictionary=["task_id"]).read(columns=["task_id"]).column("task_id")
    n = len(col)
    if n == 0:
        return _row_partitions(0, batch_rows), None
    col = col.unify_dictionaries() if col.num_chunks else col
    dictionary = col.chunk(0).dictionary if col.num_chunks else pa.array([], pa.string())
    codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) for c in col.chunks])
    names = dictionary.to_pylist() + [None]  # code -1: a null task id
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    run_codes, run_ends = codes[starts], np.r_[starts[1:], n]
    if len(np.unique(run_codes)) == len(run_codes):  # contiguous tasks: partitions are row ranges
        parts, begin, first = [], 0, 0
        for j in range(len(starts)):
            if run_ends[j] - begin >= batch_rows or j == len(starts) - 1:
                parts.append({"partition": len(parts), "rows": [int(begin), int(run_ends[j])], "tasks": j - first + 1,
                              "first_task": names[run_codes[first]], "last_task": names[run_codes[j]]})
                begin, first = int(run_ends[j]), j + 1
        return parts, None
    # tasks interleaved: whole tasks by first appearance, grouped to about batch_rows
    uniq, first_at, counts = np.unique(codes, return_index=True, return_counts=True)
    part_of_code, parts, size, group = {}, [], 0, []
    order = np.argsort(first_at, kind="stable")
    for j, k in enumerate(order):
        group.append(int(uniq[k]))
        size += int(counts[k])
        if size >= batch_rows or j == len(order) - 1:
            for c in group:
                part_of_code[c] = len(parts)
            parts.append({"partition": len(parts), "rows": None, "tasks": len(group), "first_task": names[group[0]], "last_task": names[group[-1]]})
            size, group = 0, []
    lookup = np.zeros(len(names), np.int32)  # code -> partition (code -1, a null task id: the last slot)
    for c, i in part_of_code.items():
        lookup[c] = i
    return parts, lookup[codes]


def _partition_frames(pf, parts: list[dict], row_part: np.ndarray | None, read_rows: int = 16384):
    """(descriptor, pandas frame) of each partition, in order; the file is read in batches."""
    if row_part is None:  # contiguous: cut the batch stream at the partition boundaries
        pending, have, it = [], 0, pf.iter_batches(batch_size=read_rows)
        for desc in parts:
            want = desc["rows"][1] - desc["rows"][0]
            while have < want:
                b = next(it, None)
                if b is None:
                    break
                pending.append(b)
                have += b.num_rows
            table = pa.Table.from_batches(pending, schema=pf.schema_arrow) if pending else pf.schema_arrow.empty_table()
            yield desc, table.slice(0, want).to_pandas()
            rest = table.slice(want)
            pending, have = ([rest.combine_chunks().to_batches()[0]] if rest.num_rows else []), rest.num_rows
        return

    # interleaved tasks: one pass sorts the rows into per-partition spool files (zstd Arrow IPC)
    with tempfile.TemporaryDirectory(prefix="tensorcost-validate-") as spool:
        opts = pa.ipc.IpcWriteOptions(compression="zstd")
        writers = [pa.ipc.new_file(f"{spool}/{i}.arrow", pf.schema_arrow, options=opts) for i in range(len(parts))]
        try:
            at = 0
            for b in pf.iter_batches(batch_size=read_rows):
                which = row_part[at:at + b.num_rows]
                at += b.num_rows
                for i in np.unique(which):
                    writers[i].write_batch(b.filter(pa.array(which == i)))
        finally:
            for w in writers:
                w.close()
        for i, desc in enumerate(parts):
            with pa.memory_map(f"{spool}/{i}.arrow") as src:
                yield desc, pa.ipc.open_file(src).read_all().to_pandas()


def _duplicate_ids(pf, parts: list[dict], row_part: np.ndarray | None, read_rows: int = 262144) -> dict | None:
    """The `record_id` uniqueness failure over the whole file as GX words and counts it (every row
    whose id occurs more than once, nulls ignored, examples in row order), or None. One pass hashes
    every id (8 bytes a row); only when two hashes collide does a second pass compare those ids."""
    if "record_id" not in pf.schema_arrow.names:
        return None  # the column-set expectation reports it

    def batches():
        for b in pf.iter_batches(batch_size=read_rows, columns=["record_id"]):
            col = b.column(0).to_pandas()
            yield col, pd.util.hash_pandas_object(col, index=False).to_numpy()

    all_h = np.concatenate([h for _, h in batches()] or [np.zeros(0, np.uint64)])
    uniq, counts = np.unique(all_h, return_counts=True)
    suspects = uniq[counts > 1]
    if not len(suspects):
        return None
    rows, ids, at = [], [], 0
    for col, h in batches():
        hit = np.flatnonzero(np.isin(h, suspects))
        rows.extend((hit + at).tolist())
        ids.extend(col.iloc[hit].tolist())
        at += len(col)
    seen = Counter(i for i in ids if i is not None)
    dup = [(r, i) for r, i in zip(rows, ids) if i is not None and seen[i] > 1]
    if not dup:
        return None
    if row_part is None:
        starts = np.array([d["rows"][0] for d in parts])
        in_parts = sorted({int(np.searchsorted(starts, r, side="right") - 1) for r, _ in dup})
    else:
        in_parts = sorted({int(row_part[r]) for r, _ in dup})
    return {"expectation": "expect_column_values_to_be_unique", "column": "record_id", "unexpected_count": len(dup),
            "examples": [i for _, i in dup[:5]], "partitions": [parts[i] for i in in_parts]}


def _records_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The frame the records suite checks (in place): derived `*_problem` columns for the list and JSON cells."""
    if "latencies" in df:  # absent: the column-set expectation names the missing derived column
        df["latencies_problem"] = [_latencies_problem(r, v, m) for r, v, m in zip(df["record_id"], df["latencies"], df["latency_s"])]
    df["latency_s"] = df["latency_s"].map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) or math.isfinite(v) else -1.0)
    if "trace" in df:
        df["trace_problem"] = [_trace_problem(r, t) for r, t in zip(df["record_id"], df["trace"])]
        # checked through trace_problem; the suite needs only its nulls: every row-conditioned
        # expectation would otherwise copy every trace (kilobytes a row) again
        df["trace"] = np.where(df["trace"].isna().to_numpy(), None, "")
    return df.drop(columns=["latencies"], errors="ignore")  # list column: checked through latencies_problem


def _records_statistics(df: pd.DataFrame) -> dict:
    return {
        "valid_records": int((df["error_no"] == 0).sum()),
        "error_records": int((df["error_no"] != 0).sum()),
        "tasks": int(df["task_id"].nunique()),
    }


def _feature_expectations(slot: str, target: str, n_features: int):
    import great_expectations.expectations as gxe

    # The list columns `flat` and `tokens` are replaced by derived columns (width, non-finite).
    columns = [c for c in FRAME_COLUMNS if c not in ("flat", "tokens")] + ["feature_schema", "flat_len", "flat_problem", "tokens_problem"]
    exps = [
        gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
        # Every slot trains and is evaluated on its own: an empty one (all records failed) is a defect.
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="feature_schema", value_set=[FEATURE_SCHEMA_VERSION]),
        gxe.ExpectColumnValuesToBeInSet(column="flat_len", value_set=[n_features]),
        gxe.ExpectColumnValuesToBeInSet(column="slot", value_set=[slot]),
        gxe.ExpectColumnValuesToBeInSet(column="target", value_set=[target]),
    ]
    for col in ("record_id", "task_id", "program_id", "latency_s", "label"):
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    exps += [
        # A duplicated row weighs a program twice in training and leaks across splits: one row per
        # record, and one per (task, program) since a slot holds one target.
        gxe.ExpectColumnValuesToBeUnique(column="record_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["task_id", "program_id"]),
        gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=0, strict_min=True, max_value=3600),
        # label = task's min latency / latency: in (0, 1] when both are finite and positive.
        gxe.ExpectColumnValuesToBeBetween(column="label", min_value=0, strict_min=True, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="task_weight", min_value=1),
        gxe.ExpectColumnValuesToBeNull(column="flat_problem"),
        gxe.ExpectColumnValuesToBeNull(column="tokens_problem"),
    ]
    return exps


def _derived_feature_frame(table) -> pd.DataFrame:
    """A columnar FeatureTable's metadata plus the derived check columns, computed on the
    matrices (a message only for the rows with a problem)."""
    df = table.frame.copy()
    flat = table.flat
    names = table.feature_names
    df["flat_len"] = flat.shape[1] if flat.ndim == 2 else 0
    problem = [None] * len(df)
    for i in np.flatnonzero(~np.isfinite(flat).all(axis=1)) if len(flat) else []:
        problem[i] = _nonfinite_problem(df["record_id"].iloc[i], flat[i], names)
    df["flat_problem"] = pd.Series(problem, dtype=object)
    tok_problem = [None] * len(df)
    bad_tokens = np.flatnonzero(~np.isfinite(table.token_rows).all(axis=1))
    for i in np.unique(np.searchsorted(table.token_offsets, bad_tokens, side="right") - 1):
        tok_problem[i] = _nonfinite_problem(df["record_id"].iloc[i], table.tokens(int(i)).reshape(-1))
    df["tokens_problem"] = pd.Series(tok_problem, dtype=object)
    return df


def validate_features(frame, slot: str, target: str, feature_schema: str, feature_names: Sequence[str], runner: "_SuiteRunner | None" = None) -> ValidationSummary:
    """Run the features suite on one slot's features, as featurize writes them with
    `feature_schema` and `feature_names` in their meta file: a columnar FeatureTable, or a
    feature frame (FRAME_COLUMNS, one object a row). `runner`: a suite already set up (one GX
    context for many fragments)."""
    if isinstance(frame, FeatureTable):
        df = _derived_feature_frame(frame)
    else:
        # inf label/latency: the pandas backend's between-checks fail on it (examples show `inf`).
        df = frame.drop(columns=["flat", "tokens"], errors="ignore")
        if "flat" in frame:  # absent: the column-set expectation names the missing derived columns
            df["flat_len"] = [len(v) for v in frame["flat"]]
            df["flat_problem"] = [_nonfinite_problem(r, v, feature_names) for r, v in zip(frame["record_id"], frame["flat"])]
        if "tokens" in frame:
            df["tokens_problem"] = [_nonfinite_problem(r, v) for r, v in zip(frame["record_id"], frame["tokens"])]
    df["feature_schema"] = feature_schema
    if runner is not None:
        success, failures = runner.run(df)
    else:
        success, failures = _run_suite(df, FEATURES_SUITE_NAME, slot, _feature_expectations(slot, target, len(feature_names)))
    stats = {"rows": len(df), "tasks": int(df["task_id"].nunique()) if "task_id" in df else 0, "feature_width": len(feature_names), "feature_schema": feature_schema}
    return ValidationSummary(success=success, target=slot, n_rows=len(df), failures=failures, statistics=stats, suite=FEATURES_SUITE_NAME)


def validate_feature_fragments(fragments: Sequence[Path], slot: str, target: str, feature_schema: str, feature_names: Sequence[str]) -> ValidationSummary:
    """The features suite on a store, fragment by fragment (each holds whole tasks, so the
    uniqueness checks hold across fragments): every row checked, one fragment in memory at a
    time; a failure names its fragment. An empty store fails the row-count expectation."""
    if not fragments:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in ("record_id", "task_id", "program_id", "slot", "target", "task_weight", "networks", "latency_s", "label", "n_tokens")})
        return validate_features(FeatureTable(empty, slot, feature_names=list(feature_names)), slot, target, feature_schema, feature_names)
    import great_expectations as gx

    runner = _SuiteRunner(gx.get_context(mode="ephemeral"), FEATURES_SUITE_NAME, slot, _feature_expectations(slot, target, len(feature_names)), None)
    rows = tasks = 0
    failures: list[dict] = []
    for path in fragments:
        part = validate_features(read_fragment(path, slot, list(feature_names)), slot, target, feature_schema, feature_names, runner)
        rows, tasks = rows + part.n_rows, tasks + part.statistics["tasks"]
        failures += [{**f, "partition": Path(path).name} for f in part.failures]
    stats = {"rows": rows, "tasks": tasks, "feature_width": len(feature_names), "feature_schema": feature_schema, "partitions": len(fragments)}
    return ValidationSummary(success=not failures, target=slot, n_rows=rows, failures=failures, statistics=stats, suite=FEATURES_SUITE_NAME)


def _run_suite(df: pd.DataFrame, suite_name: str, target: str, expectations: list, docs_dir: Path | None = None) -> tuple[bool, list[dict]]:
    """Validate `df` against `expectations` with GX: (success, failures as plain dicts)."""
    import great_expectations as gx

    if docs_dir is None:
        return _run_suite_in(gx.get_context(mode="ephemeral"), df, suite_name, target, expectations, None)

    # The GX project (config, stores) is scratch, removed with the command; only the HTML Data Docs are an output.
    with tempfile.TemporaryDirectory(prefix="tensorcost-gx-") as project:
        ctx = gx.get_context(mode="file", project_root_dir=project)
        return _run_suite_in(ctx, df, suite_name, target, expectations, Path(docs_dir).resolve())


def _run_suite_in(ctx, df: pd.DataFrame, suite_name: str, target: str, expectations: list, docs_dir: Path | None) -> tuple[bool, list[dict]]:
    return _SuiteRunner(ctx, suite_name, target, expectations, docs_dir).run(df)


class _SuiteRunner:
    """A suite set up once in a GX context (data source, suite, validation definition and, with
    `docs_dir`, a checkpoint that builds Data Docs), then run on any number of frames."""

    def __init__(self, ctx, suite_name: str, target: str, expectations: list, docs_dir: Path | None) -> None:
        import great_expectations as gx

        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # noqa: BLE001  (cosmetic only)
            pass
        ds_name = f"{suite_name}_{target}"
        try:
            ds = ctx.data_sources.get(ds_name)
        except (KeyError, ValueError):
            ds = ctx.data_sources.add_pandas(ds_name)
        try:
            asset = ds.get_asset(suite_name)
        except (LookupError, ValueError):
            asset = ds.add_dataframe_asset(suite_name)
        try:
            batch_def = asset.get_batch_definition("whole")
        except (KeyError, ValueError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole")
        suite = gx.ExpectationSuite(name=f"{suite_name}_{target}")
        for e in expectations:
            suite.add_expectation(e)
        try:
            ctx.suites.delete(suite.name)
        except Exception:  # noqa: BLE001  (absent on first run)
            pass
        suite = ctx.suites.add(suite)
        vd_name = f"validate_{suite_name}_{target}"
        try:
            ctx.validation_definitions.delete(vd_name)
        except Exception:  # noqa: BLE001
            pass
        self.vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=vd_name, data=batch_def, suite=suite))
        self.checkpoint = None
        if docs_dir is not None:
            site = {"class_name": "SiteBuilder", "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}, "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
            site_name = "tensorcost_docs"
            try:
                ctx.add_data_docs_site(site_name=site_name, site_config=site)
            except Exception:  # noqa: BLE001  (already configured in this project dir)
                pass
            cp_name = f"checkpoint_{suite_name}_{target}"
            try:
                ctx.checkpoints.delete(cp_name)
            except Exception:  # noqa: BLE001
                pass
            self.checkpoint = ctx.checkpoints.add(gx.Checkpoint(name=cp_name, validation_definitions=[self.vd], actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[site_name])]))

    def run(self, df: pd.DataFrame) -> tuple[bool, list[dict]]:
        """(success, failures as plain dicts) of the suite on `df`; Data Docs built when the runner has them."""
        if self.checkpoint is not None:
            result = self.checkpoint.run(batch_parameters={"dataframe": df})
            results = list(result.run_results.values())[0].results
            success = bool(result.success)
        else:
            vr = self.vd.run(batch_parameters={"dataframe": df})
            results, success = vr.results, bool(vr.success)
        failures = []
        for r in results:
            if r.success:
                continue
            cfg = r.expectation_config
            res = r.result or {}
            failures.append(
                {
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list") or []) or None,
                    "unexpected_count": int(res.get("unexpected_count") or 0),
                    # Table-level expectations have no unexpected rows: show what was observed instead.
                    "examples": [str(x) for x in (res.get("partial_unexpected_list") or [])][:5]
                    or [json.dumps(res.get("details", {}).get("mismatched") or res.get("observed_value", ""), default=str)[:300]],
                }
            )
        return success, failures


def write_summary(summary: ValidationSummary, path: Path) -> None:
    write_text(path, json.dumps(summary.to_dict(), indent=1))


# -- the data gate: what train, train_pruned and transfer may use ------------------------------------

@dataclass(frozen=True)
class SlotData:
    """A dataset slot's files as the stages lay them out: records, their verdict, the feature
    store folder and the features' verdict."""

    slot: str
    records: Path
    records_report: Path
    features_dir: Path
    features_report: Path


def records_verdict(d: SlotData) -> dict:
    """The records suite's verdict on the slot's records file, refused (one line) when missing,
    failed, or of another file than the one there now (records changed after validation)."""
    report, records, slot = d.records_report, d.records, d.slot
    if not report.exists():
        raise MissingDataError(f"{report}: no records validation for {slot} (tensorcost stage validate --target {slot}, or dvc repro validate@{slot})")
    try:
        verdict = json.loads(report.read_text())
        success, judged = verdict["success"], verdict.get("statistics", {}).get("records_md5")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{report}: not a records verdict ({type(exc).__name__}); re-run: tensorcost stage validate --target {slot}") from None
    if success is not True:
        raise UserError(f"records of {slot} failed validation; see {report} (tensorcost stage validate --target {slot}): nothing is featurized, trained or registered on them")
    if not records.exists():
        raise MissingDataError(f"{records}: missing (dvc repro records@{slot})")
    if judged != md5_file(records):
        raise UserError(f"{records} is not the records file validated in {report} (changed since, or an older verdict): re-run tensorcost stage validate --target {slot}")
    return verdict


def data_facts(d: SlotData) -> dict:
    """What a registered version records about its data: the hash of the features it trains on and
    their validation verdict (records suite and features suite). Features that failed their suite,
    or are not the store it checked, stop here: nothing is trained or registered on them."""
    records = records_verdict(d)
    store, report, slot = d.features_dir / d.slot, d.features_report, d.slot
    if not report.exists():
        raise MissingDataError(f"{report}: no features validation for {slot} (the featurize stage writes it: dvc repro featurize@{slot})")
    features = ValidationSummary(**json.loads(report.read_text()))
    if not features.success:
        raise UserError(f"features validation failed for {slot} ({store}): {features.failed_expectations()}; see {report}")
    data_hash = store_hash(d.features_dir, slot)  # MissingDataError when the store is not there
    if features.statistics.get("features_md5") != data_hash:
        raise UserError(f"{store} is not the store validated in {report} (re-run featurize: dvc repro featurize@{slot})")
    return {"hash": data_hash, "validation_passed": bool(records["success"]) and features.success}
