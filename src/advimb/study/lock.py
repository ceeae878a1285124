"""One study per run folder at a time: the run folder's lock (``run.lock``).

An invocation that writes into a run folder (``advimb run`` / ``sweep``, ``advimb tables``,
``advimb report``, their Python twins, a Dask driver) holds an exclusive advisory lock
(``fcntl.flock``) on ``<run>/run.lock`` for as long as it writes, and records in the file who
holds it: host, pid, invocation id, command and start time. A second invocation on the same
folder reads that record and either stops with one line naming the holder
(:class:`advimb.errors.UserError`, exit status 2) or, with ``wait``, waits until the holder ends.

The operating system releases the lock when its process ends, however it ends (``kill -9``,
a lost machine's NFS lease), so a lock left by a killed process is simply taken over: the
next invocation acquires it, reads the dead holder's record and says so. Nothing has to be
judged stale by age. A holder that ends normally removes the file, so a finished run folder
holds no ``run.lock``. On a file system without locks (``ENOLCK``; some network file systems)
the folder is used unlocked, with a warning.

The lock is re-entrant within a process: a study that builds its tables and report while it
holds its folder does not lock itself out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advimb.errors import UserError
from advimb.layout import RunLayout
from advimb.log import log

#: seconds between two looks at a held lock while waiting for it
POLL_SECONDS = 1.0

#: the locks this process holds: resolved lock path -> (open file, depth)
_held: dict[str, list[Any]] = {}


def holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The record of whoever holds ``run_dir``'s lock now, or None when nobody does (no
    lock file, or its last holder has ended). Takes no lock for long and writes nothing."""
    path = RunLayout(Path(run_dir)).lock
    if str(path.resolve()) in _held:
        return None  # this process holds it
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        except OSError as e:
            if e.errno == errno.ENOLCK:
                return None
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(rec: dict[str, Any]) -> str:
    """``pid 123 on host h (advimb run ..., since 2026-12-01T10:00:00+00:00)``."""
    cmd = " ".join(rec.get("argv") or [])[:120]
    return f"pid {rec.get('pid', '?')} on host {rec.get('host', '?')}" + (
        f" ({cmd}, since {rec.get('since', '?')})" if cmd else f" (since {rec.get('since', '?')})"
    )


def check_free(run_dir: str | Path, wait: bool = False) -> None:
    """Raise a :class:`UserError` naming the holder if another live invocation holds
    ``run_dir`` (with ``wait``: wait until it has ended instead). Writes nothing: this is one
    of the checks made before anything is written into a run folder."""
    rec = holder(run_dir)
    if rec is None:
        return
    if not wait:
        raise _in_use(run_dir, rec)
    log(f"{run_dir} is in use by {describe(rec)}; waiting for it to finish")
    while holder(run_dir) is not None:
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def hold(
    run_dir: str | Path, invocation: str = "", argv: list[str] | None = None, wait: bool = False
) -> Iterator[dict[str, Any] | None]:
    """Hold ``run_dir``'s lock for the ``with`` block (the folder must exist); yields the
    record of the previous holder when it was taken over from an ended process (else None).
    Another live holder: :class:`UserError`, or with ``wait`` a wait until it ends."""
    path = RunLayout(Path(run_dir)).lock
    key = str(path.resolve())
    if key in _held:  # re-entrant: this process already holds the folder
        _held[key][1] += 1
        try:
            yield None
        finally:
            _held[key][1] -= 1
        return
    fd, previous = _open_locked(path, run_dir, wait)
    try:
        if previous is not None:
            log(f"took over the lock of {run_dir} from {describe(previous)}, which has ended")
        _write(
            fd,
            {
                "host": platform.node(),
                "pid": os.getpid(),
                "invocation": invocation,
                "argv": list(argv if argv is not None else sys.argv),
                "since": _now(),
            },
        )
        _held[key] = [fd, 1]
        try:
            yield previous
        finally:
            del _held[key]
            path.unlink(missing_ok=True)  # still locked: a waiter on this file sees it gone and retries
    finally:
        os.close(fd)  # releases the lock


def _open_locked(path: Path, run_dir: str | Path, wait: bool) -> tuple[int, dict[str, Any] | None]:
    """Open and lock the lock file at ``path``: (its descriptor, the record an ended holder
    left in it). A file that was removed (its holder finished) while we waited for it is not
    the lock any more: open the new one and try again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            previous = _acquire(fd, run_dir, wait)
            if _same_file(fd, path):
                return fd, previous
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _acquire(fd: int, run_dir: str | Path, wait: bool) -> dict[str, Any] | None:
    """Lock ``fd``; returns the record left in the file by an ended holder, if any."""
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return _read(fd)
        except BlockingIOError:
            rec = _read(fd) or {}
            if not wait:
                raise _in_use(run_dir, rec) from None
            if not announced:
                log(f"{run_dir} is in use by {describe(rec)}; waiting for it to finish")
                announced = True
            time.sleep(POLL_SECONDS)
        except OSError as e:
            if e.errno != errno.ENOLCK:
                raise
            log(
                f"the file system of {run_dir} does not support locks; running without one (do not start a "
                "second invocation on this folder)"
            )
            return None


def _in_use(run_dir: str | Path, rec: dict[str, Any]) -> UserError:
    return UserError(
        f"{run_dir} is in use by another advimb invocation, {describe(rec)}; wait for it to finish "
        "(or add --wait), or choose another --out"
    )


def _read(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 1 << 16)
        return json.loads(raw) if raw.strip() else None
    except (OSError, ValueError):
        return None


def _write(fd: int, rec: dict[str, Any]) -> None:
    data = (json.dumps(rec) + "\n").encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
