"""Atomic artifact I/O: every file is written to a temporary name and renamed into place,
so a killed run never leaves a half-written artifact under its final name.

Each write also remembers (per thread) the size and sha256 of the bytes it wrote, so a
job's marker can record what *this* task wrote rather than what is on disk when the marker
is made: if a duplicate of the task (a Dask retry racing the original) replaced a file with
different bytes, the marker and the file disagree and the job counts as corrupt."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from advimb.errors import UserError


_written = threading.local()


def _registry() -> dict[str, dict[str, Any]]:
    if not hasattr(_written, "records"):
        _written.records = {}
    return _written.records


def written_record(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of what this thread last wrote to ``path`` (else of the file now)."""
    return _registry().get(str(Path(path).resolve())) or file_record(path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync, record its size and
    sha256 (:func:`written_record`) and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        _registry()[str(path.resolve())] = file_record(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, default=_default) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of a file, to check it later (``verify_record``)."""
    p = Path(path)
    return {"size": p.stat().st_size, "sha256": sha256_file(p)}


def verify_record(path: str | Path, record: dict[str, Any]) -> bool:
    p = Path(path)
    try:
        return p.stat().st_size == record["size"] and sha256_file(p) == record["sha256"]
    except (OSError, KeyError, TypeError):
        return False


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and prove it is writable, or raise a :class:`UserError`."""
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".advimb-probe-"):
            pass
    except OSError as e:
        raise UserError(
            f"{what} {p} is not writable ({e.strerror or e}); choose another with --out"
            if what == "output folder"
            else f"{what} {p} is not writable ({e.strerror or e})"
        ) from None
    return p
