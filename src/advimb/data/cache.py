"""Decoded arrays cached on disk (``<cache>/arrays/<key>.npz``) and in this process, by a key
that changes with the source files (paths, sizes, mtimes); archives unpacked once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from advimb.artifacts import write_json, write_npz
from advimb.config.sections import DataConfig
from advimb.data.dataset import Dataset
from advimb.errors import UserError
from advimb.log import log


def extract_archive(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` (once; a marker file records completion)."""
    marker = dest / ".complete"
    if marker.exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                if hasattr(tarfile, "data_filter"):  # refuse absolute paths and links out
                    t.extractall(tmp, filter="data")
                else:  # pragma: no cover - old Python patch releases
                    t.extractall(tmp)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot unpack {archive} ({e}); the archive is corrupt or truncated") from None
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    marker.write_text(archive.name)
    return dest


def stat_key(paths: list[Path], root: Path) -> str:
    """A cache key for files as they are now: their paths under ``root``, sizes and mtimes."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cache_root(cfg: DataConfig) -> Path:
    root = cfg.cache_dir or os.environ.get("ADVIMB_CACHE") or Path.home() / ".cache" / "advimb"
    return Path(root).expanduser()


#: bump when what a cache entry holds changes, so old entries are not reused (v2: grayscale
#: images keep one channel instead of being converted to RGB)
CACHE_VERSION = "v2"


class DatasetMemo:
    """Datasets loaded in this process, by a key that changes when the files do (paths, sizes,
    mtimes): a second study in the same process (a notebook, a Dask worker) reuses them and
    sees a changed folder anew. Bounded: beyond ``size`` entries the oldest goes."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[tuple, Dataset] = {}

    def __contains__(self, key: tuple) -> bool:
        return key in self._entries

    def __getitem__(self, key: tuple) -> Dataset:
        return self._entries[key]

    def forget(self, key: tuple | None = None) -> None:
        """Forget ``key``'s dataset, or every one (the next load reads the files again)."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def remember(self, key: tuple, build: Callable[[], Dataset]) -> Dataset:
        """``key``'s dataset, built by ``build`` the first time."""
        if key not in self._entries:
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = build()
        return self._entries[key]


#: the datasets this process has loaded (:func:`advimb.data.sources.load_dataset`'s memo)
DATASETS = DatasetMemo()


def forget_datasets() -> None:
    """Forget every dataset this process has loaded (the next load reads the files again)."""
    DATASETS.forget()


def cached_dataset(cache: Path, key: str, build) -> Dataset:
    return DATASETS.remember(("source", str(cache), key), lambda: _cached_on_disk(cache, key, build))


def _cached_on_disk(cache: Path, key: str, build) -> Dataset:
    npz = cache / "arrays" / f"{key}-{CACHE_VERSION}.npz"
    meta = npz.with_suffix(".json")
    if npz.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
            with np.load(npz) as z:
                x_train, y_train, x_test, y_test = (z[n] for n in ("x_train", "y_train", "x_test", "y_test"))
            return Dataset(
                info["name"],
                tuple(info["classes"]),
                x_train,
                y_train,
                x_test,
                y_test,
                info["fingerprint"],
                info["origin"],
            )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            log(f"cached arrays {npz} are unreadable; decoding the data again")
    ds = build()
    try:
        write_npz(npz, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        write_json(
            meta, {"name": ds.name, "classes": list(ds.classes), "fingerprint": ds.fingerprint, "origin": ds.origin}
        )
    except OSError as e:
        log(
            f"could not cache decoded arrays in {npz.parent} ({e.strerror}); "
            "set --set data.cache_dir=... to a writable folder to make later loads fast"
        )
    return ds
