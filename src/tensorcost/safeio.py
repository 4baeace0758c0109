"""Output paths that can never destroy an input: the checks every command that writes a result
makes before it writes anything (issue 28). Results themselves are written under a temporary
name beside the destination and renamed into place only when whole."""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError

# the write failures a user can act on (a full disk, a read-only or forbidden folder): one line, not a traceback
USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)


def check_output_path(out: str | Path, inputs: Iterable[str | Path] = (), flag: str = "--out", inside_inputs: bool = False) -> Path:
    """`out` as a Path, refused (one line) when it is a folder, one of `inputs`, inside an input
    folder when `inside_inputs` is False (a command that would read it back as an input there),
    or its folder cannot be made; the folder is created otherwise."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{flag} {out}: is a folder; give the path of the file to write")
    real = os.path.realpath(out)
    for given in inputs:
        src = os.path.realpath(given)
        if real == src:
            raise UserError(f"{flag} {out} is one of the inputs ({given}): writing it would destroy it; write the result elsewhere")
        if not inside_inputs and os.path.isdir(src) and real.startswith(src.rstrip(os.sep) + os.sep):
            raise UserError(f"{flag} {out} is inside the input folder {given}: the result would be mixed with the inputs; write it elsewhere")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {out}: cannot make its folder {out.parent} ({exc.strerror or exc})") from None
    if not out.parent.is_dir():
        raise UserError(f"{flag} {out}: {out.parent} is not a folder")
    return out


def user_os_error(exc: OSError, out: str | Path, doing: str = "writing") -> UserError | None:
    """A one-line UserError for a write failure the user can act on (disk full, read-only...),
    or None for anything else (a bug: let it show)."""
    if isinstance(exc, OSError) and exc.errno in USER_OS_ERRORS:
        return UserError(f"{doing} {out}: {exc.strerror or exc} (nothing was replaced: the previous {Path(out).name}, if any, is as it was)")
    return None


# a half-written result: `.tc-tmp<pid>-<random>-<final name>` beside the destination (the pid lets
# the next write into that folder sweep what a kill -9 left; the final name keeps the suffix
# that writers such as matplotlib read the format from)
TMP_PREFIX = ".tc-tmp"


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an exception the file is
    renamed onto `path` (atomic: a reader sees the old result or the new one, never half of one),
    otherwise it is removed and `path` is left as it was. A user-actionable write failure (disk
    full, read-only folder) becomes a one-line UserError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent, TMP_PREFIX)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        _reraise(exc, path)


@contextmanager
def scratch_file(folder: str | Path, name: str) -> Iterator[Path]:
    """A temporary file's path in `folder` (named as `atomic_output`'s, so a kill -9's leftover is
    swept by the next write there), removed when the block ends however it ends: a spool that is
    never a result."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sweep_stale(folder, TMP_PREFIX)
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}"
    try:
        yield tmp
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """`atomic_output` for a folder of files (a saved model): filled under a temporary name beside
    `path`, swapped in whole when the block succeeds; on failure `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent, TMP_PREFIX)
    tag = f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    tmp, old = path.parent / f"{tag}-{path.name}", path.parent / f"{tag}-old-{path.name}"
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():  # two renames: between them a kill leaves the old folder under `old`, swept later
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        _reraise(exc, path)
    shutil.rmtree(old, ignore_errors=True)


def _reraise(exc: BaseException, path: Path) -> None:
    """Re-raise a failed write's exception: as a one-line UserError when the user can act on it."""
    err = user_os_error(exc, path) if isinstance(exc, OSError) else None
    if err is not None:
        raise err from None
    raise exc


def write_text(path: str | Path, text: str) -> None:
    """`path.write_text(text)`, atomically (see `atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def sweep_stale(folder: str | Path, prefix: str, suffix: str = "") -> int:
    """Remove `<prefix><pid>-*<suffix>` files and folders in `folder` whose process is gone (what a
    kill -9 left behind: spools, half-written outputs, model downloads); returns how many. Names
    of live processes, and names without a pid, are left alone."""
    folder = Path(folder)
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for p in entries:
        name = p.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        pid_text = name[len(prefix):].split("-", 1)[0].split(".", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def die_with_parent() -> None:
    """In a worker process: be killed (SIGKILL) when the parent dies, even by kill -9 (Linux
    prctl PR_SET_PDEATHSIG; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        if os.getppid() == 1:  # the parent died before the call: go now
            os._exit(1)
    except OSError:
        pass
