"""TenSet / auto_scheduler measure-record importer (Python + orjson + Arrow, an optional C scanner; no TVM).

Reads record files of format versions v0.2 to v0.6, one JSON object a line:
`{"i": [[workload_key, target, hardware_params?, target_host?, layout_rewrite?, task_inputs?],
[stages, steps]], "r": [costs, error_no, all_cost, timestamp], "v": "v0.6"}`, single files or
TenSet's `measure_records/<platform>/<task>.json` layout, by streaming: memory stays flat in the
input size, good or bad. Nothing lost, nothing trusted blindly:

* a malformed line is reported as `path:line: reason`, counted, and written to the quarantine
  file `<out>.quarantine.jsonl` (streamed through spool files, never held in memory); the rest
  of its file imports;
* a bad input entry (a file that cannot be opened or read, a broken symlink, a FIFO or other
  non-regular file, an empty file, a directory that cannot be listed, a symlink loop) is reported
  as `path: reason` the same way, and the other files import;
* the Parquet output appears atomically: `<out>` is written under a temporary name and renamed
  when complete; on any failure or interruption (an exception, Ctrl-C, SIGTERM) no temporary
  Parquet, quarantine or spool file is left behind;
* a line longer than MAX_LINE_BYTES is quarantined whole (streamed), not parsed.

Nothing is ever unpickled.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import gc
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from math import isnan
from pathlib import Path

import orjson
import pyarrow as pa

from ..errors import MissingDataError
from . import schema as rec
from .ops import classify_op
from .synthetic import SYNTHETIC_PREFIX, is_synthetic_target

try:  # the C fast path (src/tensorcost/records/_recscan.c), built by `pip install`; optional
    from ._recscan import scan_record
except ImportError:  # pragma: no cover - only without a C compiler at install time
    scan_record = None

BATCH_ROWS = 65536
# A TenSet line is about 1 KB; a longer line than this is quarantined without being parsed, so
# that neither a file without newlines nor one huge line can exhaust memory.
MAX_LINE_BYTES = 1 << 20
# Real workload keys nest 2 levels deep; json's recursive decoder fails near 1,000.
MAX_WORKLOAD_DEPTH = 64
_INF = float("inf")
_FLOATS = {float}
_NUMBERS = {int, float}
_BOM = b"\xef\xbb\xbf"
RECORD_SUFFIXES = (".json", ".log", ".jsonl")
TENSET_PLATFORMS = ("platinum-8272", "e5-2673", "epyc-7452", "graviton2", "k80", "t4")


@dataclass
class ImportReport:
    files: int = 0
    lines: int = 0
    imported: int = 0
    skipped: int = 0
    comments: int = 0
    fast_lines: int = 0  # lines the C scanner took; the rest went through the reference path
    bad_files: int = 0  # input entries reported as `path: reason` (unreadable, empty, not a file...)
    errors_by_reason: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)  # first few "path:line: reason" / "path: reason"

    def merge(self, other: ImportReport) -> None:
        self.files += other.files
        self.lines += other.lines
        self.imported += other.imported
        self.skipped += other.skipped
        self.comments += other.comments
        self.fast_lines += other.fast_lines
        self.bad_files += other.bad_files
        for k, v in other.errors_by_reason.items():
            self.errors_by_reason[k] = self.errors_by_reason.get(k, 0) + v
        self.examples.extend(other.examples[: max(0, 20 - len(self.examples))])


class MalformedRecord(ValueError):
    pass


class _ReadError(Exception):
    """An OSError while reading an input file (as opposed to writing the outputs, which fails the import)."""


def _lines(f, limit: int) -> Iterator[bytes]:
    """The lines of `f`, each cut at `limit` + 1 bytes (a longer one is then handled by pieces)."""
    try:
        yield from iter(partial(f.readline, limit + 1), b"")
    except OSError as exc:
        raise _ReadError(exc) from exc


def _display(path: str | Path) -> str:
    """A path as text that can always be printed and written as JSON (undecodable bytes of a
    file name are shown as \\x escapes instead of failing later)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_record_name(name: str) -> bool:
    return name.endswith(RECORD_SUFFIXES)


def collect_record_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The record files to import and the input entries that cannot be: `(files, problems)`.

    Files named directly, and every *.json / *.log / *.jsonl under a directory (symlinks
    followed, loops skipped), in sorted order, each path once. A problem is `(path, reason)`: a
    broken symlink, a FIFO or other non-regular file, a directory that cannot be listed, a
    symlink loop. A named path that does not exist at all is a usage error (MissingDataError),
    raised before anything is written.
    """
    files: set[Path] = set()
    problems: list[tuple[Path, str]] = []

    def consider(p: Path) -> None:
        try:
            st = p.stat()
        except FileNotFoundError:
            problems.append((p, "broken symlink" if p.is_symlink() else "vanished while listing"))
            return
        except OSError as exc:
            problems.append((p, f"cannot stat ({exc.strerror or exc})"))
            return
        if stat.S_ISDIR(st.st_mode):
            walk(p, ((st.st_dev, st.st_ino),))
        elif stat.S_ISREG(st.st_mode):
            files.add(p)
        else:
            problems.append((p, "not a regular file"))

    def walk(d: Path, ancestors: tuple) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append((d, f"cannot list directory ({exc.strerror or exc})"))
            return
        for e in entries:
            p = d / e.name
            try:
                is_dir = e.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    st = e.stat()
                except OSError as exc:
                    problems.append((p, f"cannot stat ({exc.strerror or exc})"))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    problems.append((p, "symlink loop"))
                else:
                    walk(p, ancestors + (key,))
            elif _is_record_name(e.name):
                consider(p)

    for p in map(Path, paths):
        if not os.path.lexists(p):
            raise MissingDataError(f"{_display(p)}: no such file or directory")
        consider(p)
    # one path, one import: the same file named twice (or named and found in a directory) would
    # otherwise give every record twice under the same record id
    unique: dict[str, Path] = {}
    for f in sorted(files):
        unique.setdefault(os.path.abspath(f), f)
    return sorted(unique.values()), problems


def iter_record_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The record files of `collect_record_files` (without the problems)."""
    yield from collect_record_files(paths)[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def target_id_for(path: Path, target_str: str, override: str | None) -> str:
    """Target id `<platform>.tenset` (TenSet's own code generation on that platform): the override,
    else TenSet's platform directory name, else the target string's `-model=`; a platform the
    catalog does not know becomes `unknown-<kind>[-<mcpu>]`, which imports but cannot be featurized
    until it is given a catalog platform (`--target`).

    Synthetic files (`tensorcost dataset synth-tenset`: a `synthetic-<platform>` directory or
    `-model=synthetic-...`) import as `synthetic-<platform>.tenset`, and an override of them that
    does not say synthetic gets the `synthetic-` prefix: they can never pass for measurements."""
    m = re.search(r"-model=([\w.-]+)", target_str)
    parent = path.parent.name
    synthetic = is_synthetic_target(parent) or (m is not None and is_synthetic_target(m.group(1)))
    if override:
        return override if not synthetic or is_synthetic_target(override) else SYNTHETIC_PREFIX + override
    if synthetic:
        return f"{_slug(parent if is_synthetic_target(parent) else m.group(1))}.tenset"
    for part in reversed(path.parts[:-1]):
        if part in TENSET_PLATFORMS:
            return f"{part}.tenset"
    if m and m.group(1) in TENSET_PLATFORMS:
        return f"{m.group(1)}.tenset"
    words = target_str.split()
    kind = words[0] if words else "unknown"
    m = re.search(r"-mcpu=([\w.-]+)", target_str)
    return f"unknown-{_slug(kind)}{'-' + _slug(m.group(1)) if m else ''}.tenset"


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
    """Validate one decoded record; returns its fields or raises MalformedRecord with the reason.

    A measured record's costs come back as floats (integers converted: Arrow stores float64 and
    refuses integers it cannot represent exactly, such as 2^53 + 1)."""
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
        kinds = set(map(type, costs))  # exact types: a bool is not a cost
        if kinds != _FLOATS:
            if not kinds <= _NUMBERS:
                raise MalformedRecord("costs must be numbers")
            try:
                costs = [float(c) for c in costs]
            except OverflowError:
                raise MalformedRecord("measured record has a non-positive or non-finite cost") from None
        total = sum(costs)  # NaN anywhere makes the sum NaN; min/max in C: this is the hot path
        if not (min(costs) > 0 and max(costs) < _INF and not isnan(total)):
            raise MalformedRecord("measured record has a non-positive or non-finite cost")
        if total == _INF:
            raise MalformedRecord("measured record's costs add up to more than the largest float")
        return task, state[1], costs, error_no, timestamp, _version(obj), total / len(costs)
    return task, state[1], costs, error_no, timestamp, _version(obj), None


def _version(obj: dict) -> str:
    version = obj.get("v", "v0.2")
    if type(version) is not str:
        raise MalformedRecord("'v' must be a version string")
    return version


def _open_record_file(path: Path):
    """A buffered binary reader of a regular file; OSError or MalformedRecord (not a regular
    file) otherwise. O_NONBLOCK: opening a FIFO must not wait for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MalformedRecord("is a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return open(fd, "rb", buffering=1 << 16), st.st_size
    except BaseException:
        os.close(fd)
        raise


def import_file(path: Path, cols: _Columns, target_override: str | None, quarantine, report: ImportReport, workload_cache: dict, fast: bool = True) -> Iterator[pa.RecordBatch]:
    """Stream one file into `cols`, yielding full batches; bad lines go to `quarantine`, and so
    does the file itself when it cannot be read (`path: reason`).

    Each line first goes to the C scanner (`_recscan.scan_record`), which handles the common,
    well-formed line; whatever it declines (malformed, or merely unusual) takes the reference
    path: orjson + `parse_line`, which accepts a superset and words the `path:line: reason`.
    Both give identical fields for the lines the scanner accepts (tested, and fuzzed by
    benchmarks/tenset_fuzz.py). The loop body is the importer's hot path: keep per-record work
    to one scan, a hash and one tuple append.
    """
    report.files += 1
    where = _display(path)
    try:
        f, size = _open_record_file(path)
    except (OSError, MalformedRecord) as exc:
        _file_problem(report, quarantine, where, f"cannot read ({exc.strerror or exc})" if isinstance(exc, OSError) else str(exc))
        return
    # record ids: a per-file tag and the line number (unique, deterministic, no hashing per line)
    file_tag = hashlib.sha1(os.fsencode(path)).hexdigest()[:12]
    rows = cols.rows
    versions: dict = {}
    scan = scan_record if fast else None
    sha1 = hashlib.sha1
    lineno = 0
    limit = MAX_LINE_BYTES
    if size == 0:
        _file_problem(report, quarantine, where, "empty file")
    with f:
        try:
            try:
                if f.peek(3)[:3] == _BOM:  # a UTF-8 byte order mark, as some editors write: not part of the record
                    f.read(3)
            except OSError as exc:
                raise _ReadError(exc) from exc
            for lineno, line in enumerate(_lines(f, limit), 1):
                if len(line) > limit:
                    _quarantine_long_line(report, quarantine, where, lineno, line, f)
                    continue
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
                        vstr = versions.get(version) or versions.setdefault(version, f"auto_scheduler-{'v0.2' if version is None else version.decode()}")
                        row = (w, sha1(trace).hexdigest()[:16], trace, costs, mean, error_no, timestamp, vstr)
                        report.fast_lines += 1
                    else:
                        row = _reference_row(path, stripped, cols, target_override, workload_cache, versions)
                except MalformedRecord as exc:
                    _quarantine(report, quarantine, where, lineno, stripped.strip(), str(exc))
                    continue
                rows.append((f"{file_tag}{lineno:08x}", *row))
                report.imported += 1
                if len(rows) >= BATCH_ROWS:
                    yield cols.to_batch()
                    rows = cols.rows
        except _ReadError as exc:  # reading failed midway: the lines before stay imported
            cause = exc.__cause__
            _file_problem(report, quarantine, f"{where}:{lineno + 1}", f"read error ({getattr(cause, 'strerror', None) or cause}); the rest of the file is skipped")
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
    try:
        trace = orjson.dumps(steps)
    except orjson.JSONEncodeError:  # orjson reads 1,024 levels but writes 254; real steps nest 3
        raise MalformedRecord("steps nested too deeply to store") from None
    vstr = versions.get(version) or versions.setdefault(version, f"auto_scheduler-{version}")
    return (w, hashlib.sha1(trace).hexdigest()[:16], trace, costs if mean is not None else [], mean, error_no,
            float(timestamp) if type(timestamp) in (int, float) else 0.0, vstr)


_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _nesting_depth(text: str) -> int:
    """How deep JSON text nests (brackets inside strings do not count)."""
    depth = deepest = 0
    for ch in _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _reject_constant(name: str):
    raise MalformedRecord(f"workload_key has {name}, which is not JSON")


def _workload(path: Path, wkey: str, target_str: str, target_override: str | None, cols: _Columns) -> int:
    """Register a workload (task) once per batch writer; returns its index in `cols.workloads`.

    Everything the workload contributes to the row is checked here, once per distinct workload:
    nesting (json's recursive decoder), NaN / Infinity, numbers beyond a float, lone surrogates
    (Arrow stores UTF-8 only)."""
    if _nesting_depth(wkey) > MAX_WORKLOAD_DEPTH:
        raise MalformedRecord(f"workload_key nested deeper than {MAX_WORKLOAD_DEPTH} levels")
    try:
        wargs = json.loads(wkey, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise MalformedRecord("workload_key is not a JSON list") from None
    if not isinstance(wargs, list) or not wargs or not isinstance(wargs[0], str):
        raise MalformedRecord("workload_key must be a JSON list starting with a name or hash")
    try:
        json.dumps(wargs, ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:  # (a ValueError too: first)
        raise MalformedRecord("workload_key has a lone UTF-16 surrogate") from None
    except ValueError:
        raise MalformedRecord("workload_key has a number beyond the float range") from None
    name = wargs[0]
    cols.workloads.append((target_id_for(path, target_str, target_override), _sha(wkey), name, classify_op(name), json.dumps([wargs[1:]])))
    return len(cols.workloads) - 1


def _count(report: ImportReport, where: str, reason: str) -> None:
    report.errors_by_reason[reason] = report.errors_by_reason.get(reason, 0) + 1
    if len(report.examples) < 20:
        report.examples.append(f"{where}: {reason}")


def _quarantine(report: ImportReport, quarantine, where: str, lineno: int, line: bytes, reason: str) -> None:
    report.skipped += 1
    _count(report, f"{where}:{lineno}", reason)
    if quarantine is not None:
        quarantine.write(orjson.dumps({"where": f"{where}:{lineno}", "reason": reason, "line": line.decode("utf-8", "replace")}) + b"\n")


def _file_problem(report: ImportReport, quarantine, where: str, reason: str) -> None:
    """An input entry that gives no lines (or no more lines): `path: reason`, quarantined with line null."""
    report.bad_files += 1
    _count(report, where, reason)
    if quarantine is not None:
        quarantine.write(orjson.dumps({"where": where, "reason": reason, "line": None}) + b"\n")


def _quarantine_long_line(report: ImportReport, quarantine, where: str, lineno: int, head: bytes, f) -> None:
    """A line longer than MAX_LINE_BYTES: quarantined whole, but copied through in pieces (the
    JSON string written chunk by chunk) so that memory stays at one piece, and never parsed."""
    reason = f"line longer than {MAX_LINE_BYTES} bytes"
    report.skipped += 1
    _count(report, f"{where}:{lineno}", reason)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    if quarantine is not None:
        quarantine.write(orjson.dumps({"where": f"{where}:{lineno}", "reason": reason})[:-1] + b',"line":"')
    chunk = head
    while True:
        end = chunk.endswith(b"\n")
        if quarantine is not None:
            text = decoder.decode(chunk[:-1] if end else chunk, final=end)
            quarantine.write(orjson.dumps(text)[1:-1])
        if end:
            break
        try:
            chunk = f.readline(MAX_LINE_BYTES)
        except OSError as exc:
            raise _ReadError(exc) from exc
        if not chunk:
            if quarantine is not None:
                quarantine.write(orjson.dumps(decoder.decode(b"", final=True))[1:-1])
            break
    if quarantine is not None:
        quarantine.write(b'"}\n')


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


def parse_file(args) -> tuple[str, ImportReport, str]:
    """Worker: one file -> (an Arrow IPC file of its records in `spool`, report, a JSON-lines file
    of its quarantined lines in `spool`).

    The records go through a spool file the writer memory-maps, not through the result pipe:
    a gigabyte of traces pickled, piped and unpickled costs the writer process CPU that the
    parsers need. Batches and quarantined lines are written as they come: a worker holds one
    batch, whatever the size of its file. Spool files are the caller's to delete (they live in
    its temporary directory, removed even when this raises)."""
    path, target_override, spool, fast = args
    report = ImportReport()
    cols = _Columns()
    fd, ipc_path = tempfile.mkstemp(suffix=".arrow", dir=spool)
    qfd, q_path = tempfile.mkstemp(suffix=".quarantine.jsonl", dir=spool)
    with os.fdopen(fd, "wb") as sink, pa.ipc.new_stream(sink, rec.RECORDS_SCHEMA) as writer, \
            os.fdopen(qfd, "wb", buffering=1 << 16) as quarantine, _gc_paused():
        for batch in import_file(Path(path), cols, target_override, quarantine, report, {}, fast):
            writer.write_batch(batch)
        if len(cols):
            writer.write_batch(cols.to_batch())
    return ipc_path, report, q_path


# The writer is the one process all records pass through: dictionary-encode only the columns
# with few distinct values (trying it on a million distinct traces is wasted work) and keep
# min/max statistics off the long text columns (nobody filters on a trace's min).
