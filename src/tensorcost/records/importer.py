"""The TenSet importer's process side: `import_tenset` parses record files (`records.tenset`) in
forked worker processes, streams their batches into one Parquet file written atomically, spools
the quarantine, and cleans up after itself on any failure, Ctrl-C, SIGTERM or a parent's kill -9
(workers die with their parent; a later import removes a dead importer's spool)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import UserError
from ..names import NameError_, check_name
from ..safeio import check_output_path, die_with_parent, sweep_stale, user_os_error
from . import schema as rec
from .tenset import BATCH_ROWS, ImportReport, _display, _file_problem, _is_record_name, collect_record_files, parse_file

DICT_COLUMNS = ["source", "target", "task_id", "task_name", "networks", "op_kind", "shapes", "tvm_version"]
STATS_COLUMNS = ["target", "task_id", "task_weight", "latency_s", "error_no", "measured_at"]


SPOOL_PREFIX = "tensorcost-import-"  # + the importer's pid: a later import removes a dead one's spool


def _spool_root(out: Path) -> str:
    """/dev/shm when writable with room to spare (containers often give it 64 MB), else beside `out`."""
    try:
        if os.access("/dev/shm", os.W_OK) and shutil.disk_usage("/dev/shm").free > 2 << 30:
            return "/dev/shm"
    except OSError:
        pass
    return str(out.parent)


class _Interruption:
    """What the SIGTERM handler knows: the import's worker pids, and the signal once it came."""

    def __init__(self) -> None:
        self.worker_pids: list[int] = []
        self.signum = 0

    def raise_if_interrupted(self) -> None:
        if self.signum:
            raise SystemExit(128 + self.signum)


@contextlib.contextmanager
def _sigterm_unwinds():
    """While importing, SIGTERM unwinds this process with SystemExit(143) instead of killing it
    on the spot, so that the cleanup runs (no temporary output left behind).

    With worker processes the handler raises nothing: an exception thrown into whatever the main
    thread is doing can leave a lock of the executor held (a hang at exit). It SIGKILLs the
    workers instead; the executor then fails the pending results (BrokenProcessPool) and the
    import loop turns that into SystemExit(143). Forked workers inherit the handler and just die."""
    state = _Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        state.signum = signum
        if not state.worker_pids:
            raise SystemExit(128 + signum)
        for worker in state.worker_pids:
            with contextlib.suppress(OSError):
                os.kill(worker, signal.SIGKILL)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)


def _worker_init() -> None:
    # Ctrl-C is for the importing process, which stops the workers; SIGTERM (blocked while the
    # workers were forked) kills a worker as usual.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    die_with_parent()  # a kill -9 of the importer takes its workers with it


def _start_workers(workers: int, jobs: list, interruption: _Interruption):
    """(executor, ordered results) of `parse_file` over `jobs` in forked worker processes.

    SIGTERM is held back while the workers start, until the handler knows their pids: arriving
    in the middle, it would unwind this process with live workers left behind (they hold the
    caller's pipes open)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_worker_init)
        results = pool.map(parse_file, jobs)  # starts every worker (fork context)
        interruption.worker_pids = list(getattr(pool, "_processes", {}))  # no public way before Python 3.14
        return pool, results
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _kill_workers(pool, interruption: _Interruption) -> None:
    """Stop an interrupted import's workers at once: SIGKILL, not a polite shutdown (a worker
    stopped while holding a queue lock would hang a pool's terminate()); the executor notices
    dead workers by their process sentinels and winds itself down."""
    if pool is None:
        return
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in interruption.worker_pids:
        with contextlib.suppress(OSError):
            os.kill(worker, signal.SIGKILL)
    interruption.worker_pids = []


def import_tenset(paths: Iterable[str | Path], out: str | Path, target: str | None = None, workers: int | None = None, progress: bool = True,
                  fast: bool = True) -> ImportReport:
    """Import record files into the canonical Parquet table `out` (and `<out>.quarantine.jsonl`
    when anything was quarantined or reported).

    Worker processes parse files in parallel and hand Arrow batches to this process, the single
    writer, which encodes them once into `out` (row groups of about BATCH_ROWS records) as they
    arrive: memory stays bounded by a few batches, whatever the input size or how much of it is
    bad. `out` and the quarantine file are written under temporary names and renamed when
    complete; on any failure or interruption the temporary files are removed.
    """
    paths = list(paths)
    if target is not None:
        try:
            target.encode()
        except UnicodeEncodeError:
            raise UserError(f"--target {_display(target)!r} is not valid UTF-8") from None
        try:
            check_name("target id", target, where="--target")  # it names files and registry models
        except NameError_ as exc:
            raise UserError(str(exc)) from None
    # never an input; inside an input folder only under a name the import does not read as records
    out = check_output_path(out, paths, inside_inputs=not _is_record_name(Path(out).name))
    files, problems = collect_record_files(paths)
    check_output_path(out, files, inside_inputs=True)
    quarantine = out.with_name(out.name + ".quarantine.jsonl")
    # an earlier import's quarantine inside an input directory is a *.jsonl, but not records
    own = {os.path.abspath(out), os.path.abspath(quarantine)}
    files = [f for f in files if os.path.abspath(f) not in own]
    out.parent.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or (os.cpu_count() or 1), len(files) or 1))
    report = ImportReport()
    temporaries: list[Path] = []

    # what an import killed with -9 left: its spool and its half-written files (their pid is gone)

    sweep_stale(_spool_root(out), SPOOL_PREFIX)
    sweep_stale(out.parent, f"{out.name}.", ".tmp")
    sweep_stale(out.parent, f"{quarantine.name}.", ".tmp")

    def temporary(name: str) -> Path:
        """A unique name beside `out` (two imports into one directory do not collide); the file
        is created by its writer, with the usual permissions."""
        p = out.parent / f"{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        temporaries.append(p)
        return p

    pending: list[pa.RecordBatch] = []
    pending_files: list[str] = []
    pending_rows = 0

    def flush(writer) -> None:
        nonlocal pending, pending_files, pending_rows
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
        pending = []  # drop the memory maps before their files
        for f in pending_files:
            os.unlink(f)
        pending_files, pending_rows = [], 0

    try:
        with _sigterm_unwinds() as interruption:
            tmp_out, tmp_quarantine = temporary(out.name), temporary(quarantine.name)
            # tmpfs when there is one: the spool files are written once, read once, deleted
            with tempfile.TemporaryDirectory(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=_spool_root(out)) as spool, \
                    pq.ParquetWriter(tmp_out, rec.RECORDS_SCHEMA, compression="zstd", use_dictionary=DICT_COLUMNS, write_statistics=STATS_COLUMNS) as writer, \
                    open(tmp_quarantine, "wb") as qf, tqdm(total=len(files), desc="import", unit="file", disable=not progress) as bar:
                for p, reason in problems:
                    _file_problem(report, qf, _display(p), reason)
                jobs = [(str(f), target, spool, fast) for f in files]
                pool = None
                try:
                    if workers == 1:
                        results = map(parse_file, jobs)
                    else:
                        pool, results = _start_workers(workers, jobs, interruption)
                    for ipc_path, rep, q_path in results:
                        report.merge(rep)
                        with open(q_path, "rb") as src:
                            shutil.copyfileobj(src, qf, 1 << 20)
                        os.unlink(q_path)
                        for batch in pa.ipc.open_stream(pa.memory_map(ipc_path)):  # zero-copy views of the spool file
                            pending.append(batch)
                            pending_rows += batch.num_rows
                        pending_files.append(ipc_path)
                        if pending_rows >= BATCH_ROWS:
                            flush(writer)
                        bar.update(1)
                    flush(writer)
                    interruption.raise_if_interrupted()  # a SIGTERM after the last result
                except BaseException:
                    pending.clear()
                    _kill_workers(pool, interruption)
                    pool = None
                    interruption.raise_if_interrupted()  # the workers' BrokenProcessPool, as SIGTERM's exit
                    raise
                finally:
                    if pool is not None:
                        pool.shutdown(wait=True)
            if report.imported == 0 and out.exists():  # a failed import keeps the good file it would replace
                raise UserError(f"no record imported from {len(files)} file(s) ({report.skipped} line(s) skipped, {report.bad_files} bad input(s)): "
                                f"{out} is left as it was")
            tmp_out.replace(out)  # atomic: a reader never sees half a file
            if report.skipped or report.bad_files:
                tmp_quarantine.replace(quarantine)
            else:
                tmp_quarantine.unlink()
                quarantine.unlink(missing_ok=True)  # an earlier import's, which would describe another input
    except OSError as exc:  # a full disk, a read-only folder: one line (the temporaries go below)
        err = user_os_error(exc, out)
        if err is None:
            raise
        raise err from None
    finally:
        for p in temporaries:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return report
