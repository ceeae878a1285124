"""Atomic artifact I/O: every file is written to a temporary name and renamed into place,
so a killed run never leaves a half-written artifact under its final name.

Each write also remembers (per thread) the size and sha256 of the bytes it wrote, so a
job's marker can record what *this* task wrote rather than what is on disk when the marker
is made: if a duplicate of the task (a Dask retry racing the original) replaced a file with
different bytes, the marker and the file disagree and the job counts as corrupt."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from advimb.errors import UserError

_written = threading.local()


def _registry() -> dict[str, dict[str, Any]]:
    if not hasattr(_written, "records"):
        _written.records = {}
    return _written.records


def written_record(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of what this thread last wrote to ``path`` (else of the file now). The
    record is handed over once: reading it forgets it, so a long study keeps no list of every
    file it wrote."""
    return _registry().pop(str(Path(path).resolve()), None) or file_record(path)


def _new_temp(path: Path) -> Path:
    """Create an empty temporary file beside ``path`` with the mode a plain ``open`` gives
    (0666 less the umask: ``tempfile.mkstemp`` would make it 0600, and the artifact would
    keep that after the rename, unreadable to the other users of shared storage)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync, record its size and
    sha256 (:func:`written_record`) and rename it into place. The file gets the mode the
    umask allows, like any file the user writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temp(path)
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
        return json_safe(float(o))
    if isinstance(o, np.ndarray):
        return json_safe(o.tolist())
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def json_safe(o: Any) -> Any:
    """``o`` with NaN and infinities (undefined numbers) as None: strict JSON for any reader."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    return o


def write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as strict JSON (an undefined number is written as null)."""
    write_text(path, json.dumps(json_safe(obj), indent=1, default=_default, allow_nan=False) + "\n")


def csv_text(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """Rows as CSV; floats with 4 decimals, an undefined float as an empty cell."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(
            {k: (("" if not math.isfinite(v) else f"{v:.4f}") if isinstance(v, float) else v) for k, v in r.items()}
        )
    return buf.getvalue()


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub: **arrays could name allow_pickle


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


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Raise a :class:`UserError` unless ``path`` could be created (or is) a writable folder;
    creates nothing, so a refused run leaves no trace."""
    p = Path(path).expanduser()
    hint = "; choose another with --out" if what == "output folder" else ""
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {p} is not writable ({probe} is not a folder){hint}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p} is not writable (no write permission in {probe}){hint}")
    return p


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
