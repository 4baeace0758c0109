"""TenSet / auto_scheduler measure-record importer (Python + orjson + Arrow, an optional C scanner; no TVM).

Reads record files of format versions v0.2 to v0.6, one JSON object a line:
`{"i": [[workload_key, target, hardware_params?, target_host?, layout_rewrite?, task_inputs?],
[stages, steps]], "r": [costs, error_no, all_cost, timestamp], "v": "v0.6"}`, single files or
TenSet's `measure_records/<platform>/<task>.json` layout, by streaming: memory stays flat in the
input size. Malformed lines are reported as `path:line: reason`, counted, and written to a
quarantine file; good lines are never lost. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from . import records as rec
from .features import classify_op

try:  # the C fast path (src/tensorcost/_recscan.c), built by `pip install`; optional
    from ._recscan import scan_record as _scan_record
except ImportError:  # pragma: no cover - only without a C compiler at install time
    _scan_record = None

BATCH_ROWS = 65536
_INF = float("inf")
TENSET_PLATFORMS = ("platinum-8272", "e5-2673", "epyc-7452", "graviton2", "k80", "t4")


@dataclass
class ImportReport:
    files: int = 0
    lines: int = 0
    imported: int = 0
    skipped: int = 0
    comments: int = 0
    fast_lines: int = 0  # lines the C scanner took; the rest went through the reference path
    errors_by_reason: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)  # first few "path:line: reason"

    def merge(self, other: "ImportReport") -> None:
        self.files += other.files
        self.lines += other.lines
        self.imported += other.imported
        self.skipped += other.skipped
        self.comments += other.comments
        self.fast_lines += other.fast_lines
        for k, v in other.errors_by_reason.items():
            self.errors_by_reason[k] = self.errors_by_reason.get(k, 0) + v
        self.examples.extend(other.examples[: max(0, 20 - len(self.examples))])


class MalformedRecord(ValueError):
    pass


def iter_record_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, or every *.json / *.log / *.jsonl under a directory, in sorted order."""
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix in (".json", ".log", ".jsonl"):
                    yield f
        elif p.exists():
            yield p
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")


def target_id_for(path: Path, target_str: str, override: str | None) -> str:
    """Target id: the override, else TenSet's platform directory name, else from the target string."""
    if override:
        return override
    for part in reversed(path.parts[:-1]):
        if part in TENSET_PLATFORMS:
            return f"tenset-{part}"
    kind = target_str.split()[0] if target_str else "unknown"
    m = re.search(r"-mcpu=([\w.-]+)", target_str)
    if m:
        return f"tenset-{kind}-{m.group(1)}"
    m = re.search(r"-model=([\w.-]+)", target_str)
    return f"tenset-{kind}-{m.group(1)}" if m else f"tenset-{kind}"


class _Columns:
    """Buffered records of one batch. Per record only what varies is kept, as one tuple (one
    append instead of one per column); per-workload fields are stored once and expanded with a
    vectorized `take`, constant fields are filled in at batch time."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []  # (record_id, workload index, program_id, trace, latencies, latency_s, error_no, measured_at, version)
        self.workloads: list[tuple] = []  # (target, task_id, task_name, op_kind, shapes)

    def __len__(self) -> int:
        return len(self.rows)

    def to_batch(self) -> pa.RecordBatch:
        n = len(self.rows)
        rid, widx, pid, trace, lats, lat, err, at, ver = zip(*self.rows) if n else ([],) * 9
        idx = pa.array(widx, pa.int32())
        wcols = list(zip(*self.workloads)) if self.workloads else [[]] * 5
        wl = [pa.array(list(col), pa.string()).take(idx) for col in wcols]
        cols = {
            "record_id": pa.array(rid, pa.string()), "source": pa.array(["tenset"] * n, pa.string()),
            "target": wl[0], "task_id": wl[1], "task_name": wl[2], "networks": pa.array(["{}"] * n, pa.string()),
            "task_weight": pa.array([1] * n, pa.int32()), "op_kind": wl[3], "shapes": wl[4],
            "flops": pa.array([0.0] * n, pa.float64()), "bytes_moved": pa.array([0.0] * n, pa.float64()),
            "program_id": pa.array(pid, pa.string()), "trace": pa.array(trace, pa.binary()).view(pa.string()),  # orjson's or the scanner's (ASCII) output: valid UTF-8
            "latencies": pa.array(lats, pa.list_(pa.float64())), "latency_s": pa.array(lat, pa.float64()),
            "error_no": pa.array(err, pa.int32()), "error_msg": pa.nulls(n, pa.string()),
            "measured_at": pa.array(at, pa.float64()), "tvm_version": pa.array(ver, pa.string()),
        }
        batch = pa.RecordBatch.from_pydict(cols, schema=rec.RECORDS_SCHEMA)
        self.rows = []
        return batch


def _sha(text: str | bytes, n: int = 16) -> str:
    return hashlib.sha1(text if isinstance(text, bytes) else text.encode()).hexdigest()[:n]


def parse_line(obj: dict) -> tuple:
    """Validate one decoded record; returns its fields or raises MalformedRecord with the reason."""
    if not isinstance(obj, dict):
        raise MalformedRecord("not a JSON object")
    try:
        inp, res = obj["i"], obj["r"]
    except KeyError as exc:
        raise MalformedRecord(f"missing key {exc.args[0]!r}") from None
    if not (isinstance(inp, list) and len(inp) == 2 and isinstance(inp[0], list) and isinstance(inp[1], list)):
        raise MalformedRecord("'i' must be [task, state]")
    task, state = inp
    if len(task) < 2 or not isinstance(task[0], str) or not isinstance(task[1], str):
        raise MalformedRecord("'i[0]' must start with workload_key and target strings")
    if len(state) != 2 or not isinstance(state[1], list):
        raise MalformedRecord("'i[1]' must be [stages, steps]")
    if not (isinstance(res, list) and len(res) >= 4 and isinstance(res[0], list)):
        raise MalformedRecord("'r' must be [costs, error_no, all_cost, timestamp]")
    costs, error_no, _, timestamp = res[0], res[1], res[2], res[3]
    if type(error_no) is not int or not -(2**31) <= error_no < 2**31:
        raise MalformedRecord("error_no must be a 32-bit integer")
    if error_no == 0:
        if not costs:
            raise MalformedRecord("measured record (error_no 0) without costs")
        try:  # min/max in C instead of a Python loop per cost: this is the hot path
            total = sum(costs)  # NaN anywhere makes the sum NaN
            ok = min(costs) > 0 and max(costs) < _INF and total == total and type(costs[0]) is not bool
        except TypeError:
            raise MalformedRecord("costs must be numbers") from None
        if not ok:
            raise MalformedRecord("measured record has a non-positive or non-finite cost")
        return task, state[1], costs, error_no, timestamp, _version(obj), total / len(costs)
    return task, state[1], costs, error_no, timestamp, _version(obj), None


def _version(obj: dict) -> str:
    version = obj.get("v", "v0.2")
    if type(version) is not str:
        raise MalformedRecord("'v' must be a version string")
    return version


def import_file(path: Path, cols: _Columns, target_override: str | None, quarantine, report: ImportReport, workload_cache: dict, fast: bool = True) -> Iterator[pa.RecordBatch]:
    """Stream one file into `cols`, yielding full batches; bad lines go to `quarantine`.

    Each line first goes to the C scanner (`_recscan.scan_record`), which handles the common,
    well-formed line; whatever it declines (malformed, or merely unusual) takes the reference
    path: orjson + `parse_line`, which accepts a superset and words the `path:line: reason`.
    Both give identical fields for the lines the scanner accepts (tested). The loop body is the
    importer's hot path: keep per-record work to one scan, a hash and one tuple append.
    """
    report.files += 1
    # record ids: a per-file tag and the line number (unique, deterministic, no hashing per line)
    file_tag = _sha(str(path), 12)
    rows = cols.rows
    versions: dict = {}
    scan = _scan_record if fast else None
    sha1 = hashlib.sha1
    lineno = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line[:1] == b"{":  # the common case: the parsers take the line with its newline
                stripped = line
                fields = scan(line) if scan is not None else None
            else:
                stripped = line.strip()
                if not stripped or stripped[:1] == b"#":
                    report.comments += 1
                    continue
                fields = None
            try:
                if fields is not None:  # the scanner's fields; only a new workload costs a decode
                    key, trace, costs, mean, error_no, timestamp, version = fields
                    w = workload_cache.get(key)
                    if w is None:
                        w = workload_cache[key] = _workload(path, *orjson.loads(b"[" + key + b"]"), target_override, cols)
                    vstr = versions.get(version) or versions.setdefault(version, f"auto_scheduler-{version.decode() if version else 'v0.2'}")
                    row = (w, sha1(trace).hexdigest()[:16], trace, costs, mean, error_no, timestamp, vstr)
                    report.fast_lines += 1
                else:
                    row = _reference_row(path, stripped, cols, target_override, workload_cache, versions)
            except MalformedRecord as exc:
                _quarantine(report, quarantine, path, lineno, stripped.strip(), str(exc))
                continue
            rows.append((f"{file_tag}{lineno:08x}", *row))
            report.imported += 1
            if len(rows) >= BATCH_ROWS:
                yield cols.to_batch()
                rows = cols.rows
    report.lines += lineno


def _reference_row(path: Path, line: bytes, cols: _Columns, target_override: str | None, workload_cache: dict, versions: dict) -> tuple:
    """The reference path for one line (orjson + `parse_line`): a row without its record id, or
    MalformedRecord with the reason."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise MalformedRecord(f"invalid JSON ({str(exc).split(':')[0]})") from None
    task, steps, costs, error_no, timestamp, version, mean = parse_line(obj)
    key = (task[0], task[1])
    w = workload_cache.get(key)
    if w is None:
        w = _workload(path, task[0], task[1], target_override, cols)
        workload_cache[key] = w
    trace = orjson.dumps(steps)
    vstr = versions.get(version) or versions.setdefault(version, f"auto_scheduler-{version}")
    return (w, hashlib.sha1(trace).hexdigest()[:16], trace, costs if mean is not None else [], mean, error_no,
            float(timestamp) if type(timestamp) in (int, float) else 0.0, vstr)


def _workload(path: Path, wkey: str, target_str: str, target_override: str | None, cols: _Columns) -> int:
    """Register a workload (task) once per batch writer; returns its index in `cols.workloads`."""
    try:
        wargs = json.loads(wkey)
    except json.JSONDecodeError:
        raise MalformedRecord("workload_key is not a JSON list") from None
    if not isinstance(wargs, list) or not wargs or not isinstance(wargs[0], str):
        raise MalformedRecord("workload_key must be a JSON list starting with a name or hash")
    name = wargs[0]
    cols.workloads.append((target_id_for(path, target_str, target_override), _sha(wkey), name, classify_op(name), json.dumps([wargs[1:]])))
    return len(cols.workloads) - 1


def _quarantine(report: ImportReport, quarantine, path: Path, lineno: int, line: bytes, reason: str) -> None:
    report.skipped += 1
    report.errors_by_reason[reason] = report.errors_by_reason.get(reason, 0) + 1
    if len(report.examples) < 20:
        report.examples.append(f"{path}:{lineno}: {reason}")
    if quarantine is not None:
        quarantine.write(orjson.dumps({"where": f"{path}:{lineno}", "reason": reason, "line": line.decode("utf-8", "replace")}) + b"\n")


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: a batch keeps ~10^5 freshly decoded lists alive, and
    every collection would walk them all again (about 20% of the import time), while the
    importer creates no reference cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_file(args) -> tuple[str, ImportReport, bytes]:
    """Worker: one file -> (an Arrow IPC file of its records in `spool`, report, quarantine lines).

    The records go through a spool file the writer memory-maps, not through the result pipe:
    a gigabyte of traces pickled, piped and unpickled costs the writer process CPU that the
    parsers need."""
    path, target_override, spool, fast = args
    report = ImportReport()
    cols = _Columns()
    quarantine = io.BytesIO()
    with _gc_paused():
        batches = list(import_file(Path(path), cols, target_override, quarantine, report, {}, fast))
    if len(cols):
        batches.append(cols.to_batch())
    fd, ipc_path = tempfile.mkstemp(suffix=".arrow", dir=spool)
    with os.fdopen(fd, "wb") as sink, pa.ipc.new_stream(sink, rec.RECORDS_SCHEMA) as writer:
        for b in batches:
            writer.write_batch(b)
    return ipc_path, report, quarantine.getvalue()


# The writer is the one process all records pass through: dictionary-encode only the columns
# with few distinct values (trying it on a million distinct traces is wasted work) and keep
# min/max statistics off the long text columns (nobody filters on a trace's min).
_DICT_COLUMNS = ["source", "target", "task_id", "task_name", "networks", "op_kind", "shapes", "tvm_version"]
_STATS_COLUMNS = ["target", "task_id", "task_weight", "latency_s", "error_no", "measured_at"]


def _spool_root(out: Path) -> str:
    """/dev/shm when writable with room to spare (containers often give it 64 MB), else beside `out`."""
    try:
        if os.access("/dev/shm", os.W_OK) and shutil.disk_usage("/dev/shm").free > 2 << 30:
            return "/dev/shm"
    except OSError:
        pass
    return str(out.parent)


def import_tenset(paths: Iterable[str | Path], out: str | Path, target: str | None = None, workers: int | None = None, progress: bool = True,
                  fast: bool = True) -> ImportReport:
    """Import record files into the canonical Parquet table `out` (and `<out>.quarantine.jsonl`).

    Worker processes parse files in parallel and hand Arrow batches to this process, the single
    writer, which encodes them once into `out` (row groups of about BATCH_ROWS records) as they
    arrive: memory stays bounded by a few files' records, whatever the input size.
    """
    from tqdm import tqdm

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = list(iter_record_files(paths))
    workers = max(1, min(workers or (os.cpu_count() or 1), len(files) or 1))
    quarantine = out.with_name(out.name + ".quarantine.jsonl")
    tmp_out = out.with_name(out.name + ".tmp")
    report = ImportReport()
    # tmpfs when there is one: the spool files are written once, read once, deleted
    spool = tempfile.TemporaryDirectory(prefix="tensorcost-import-", dir=_spool_root(out))
    jobs = [(str(f), target, spool.name, fast) for f in files]
    pending: list[pa.RecordBatch] = []
    pending_files: list[str] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending, pending_files, pending_rows
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
        for f in pending_files:
            os.unlink(f)
        pending, pending_files, pending_rows = [], [], 0

    with spool, pq.ParquetWriter(tmp_out, rec.RECORDS_SCHEMA, compression="zstd", use_dictionary=_DICT_COLUMNS, write_statistics=_STATS_COLUMNS) as writer, open(quarantine, "wb") as qf, \
            tqdm(total=len(files), desc="import", unit="file", disable=not progress) as bar:
        if workers == 1:
            results = map(_parse_file, jobs)
            pool = None
        else:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(workers)
            results = pool.imap(_parse_file, jobs, chunksize=1)
        try:
            for ipc_path, rep, qlines in results:
                report.merge(rep)
                qf.write(qlines)
                for batch in pa.ipc.open_stream(pa.memory_map(ipc_path)):  # zero-copy views of the spool file
                    pending.append(batch)
                    pending_rows += batch.num_rows
                pending_files.append(ipc_path)
                if pending_rows >= BATCH_ROWS:
                    flush()
                bar.update(1)
            flush()
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    tmp_out.replace(out)  # atomic: a reader never sees half a file
    if report.skipped == 0:
        quarantine.unlink()
    return report
