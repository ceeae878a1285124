"""torchvision's datasets by name: ``data.source = "torchvision:<Dataset>"`` for MNIST,
FashionMNIST, KMNIST, CIFAR10, CIFAR100 and SVHN, read through torchvision's own loaders
(with its checksums).

Without ``data.dir`` torchvision downloads the dataset into advimb's cache. With ``data.dir``
it reads a local copy: torchvision's own layout under that folder (``<dir>/FashionMNIST/raw/
...``, ``<dir>/cifar-100-python/``, ``<dir>/train_32x32.mat``), or, for the MNIST family, the
four idx files side by side (``train-images-idx3-ubyte.gz``..., as Debian's
``dataset-fashion-mnist`` installs them in ``/usr/share/datasets/fashion-mnist``): the
``.gz`` files are checked against torchvision's md5 sums and unpacked into the cache; a
re-compressed copy (Debian's: same images, other gzip bytes) fails that check, so its idx
contents are checked instead (torchvision's reader checks magic numbers and dimensions,
advimb the 60,000 / 10,000 sizes and 10 labels) and the dataset's origin says so.

Images become uint8 NHWC (1 channel for the MNIST family, 3 otherwise); class names come
from the dataset, made file-system-safe (``T-shirt/top`` -> ``T-shirt_top``, ``Ankle boot``
-> ``Ankle_boot``); SVHN's classes are its digits ``0``-``9``.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np

from advimb.config.sections import DataConfig
from advimb.data.cache import cache_root, cached_dataset, stat_key
from advimb.data.dataset import Dataset, _make
from advimb.errors import UserError

PREFIX = "torchvision:"
SUPPORTED = ("MNIST", "FashionMNIST", "KMNIST", "CIFAR10", "CIFAR100", "SVHN")
MNIST_FAMILY = ("MNIST", "FashionMNIST", "KMNIST")


def is_torchvision(source: str) -> bool:
    return source.startswith(PREFIX)


def check_torchvision(source: str) -> str:
    """The dataset's torchvision class name (a one-line error if advimb does not read it)."""
    name = source[len(PREFIX) :]
    if name not in SUPPORTED:
        raise UserError(
            f"config data.source: {source!r}; advimb reads torchvision's {', '.join(PREFIX + s for s in SUPPORTED)}"
        )
    return name


def safe_class(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(name)).strip("_") or "class"


def load_torchvision(cfg: DataConfig, progress: bool) -> Dataset:
    name = check_torchvision(cfg.source)
    cache = cache_root(cfg)
    if cfg.dir is None:
        root, download = cache / "torchvision", cfg.download
        origin = f"torchvision {name} (downloaded into {root})"
    else:
        d = Path(cfg.dir).expanduser()
        if not d.is_dir():
            raise UserError(f"data directory {d} does not exist; check --data-dir or ADVIMB_DATA")
        stamp = stat_key(sorted(p for p in d.rglob("*") if p.is_file()), d)
        root, download = (
            (_stage_idx(d, name, cache / "torchvision-local" / f"{name}-{stamp}") if name in MNIST_FAMILY else d),
            False,
        )
        origin = f"torchvision {name} from {d}"
    # downloaded: torchvision checks the files itself; local: the copy's sizes and mtimes
    key = f"torchvision-{name}-" + ("download" if cfg.dir is None else stamp)
    return cached_dataset(cache, key, lambda: _read(name, root, download, origin))


def _stage_idx(d: Path, name: str, root: Path) -> Path:
    """The MNIST family's idx files flat in ``d`` (``.gz`` md5-checked) unpacked into
    torchvision's layout in the cache; ``d`` itself when it already has that layout."""
    import torchvision
    from torchvision.datasets.utils import check_integrity

    cls = getattr(torchvision.datasets, name)
    if (d / name / "raw").is_dir():
        return d
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    unverified: list[str] = []
    for fname, md5 in cls.resources:
        plain = fname.removesuffix(".gz")
        if (d / fname).is_file():
            if not check_integrity(str(d / fname), md5):
                unverified.append(fname)  # re-compressed (Debian's are): the idx contents are checked instead
            if not (raw / plain).is_file():
                with gzip.open(d / fname, "rb") as src, open(raw / (plain + ".part"), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                (raw / (plain + ".part")).replace(raw / plain)
        elif (d / plain).is_file():  # uncompressed: torchvision publishes no checksum for it
            shutil.copyfile(d / plain, raw / plain)
            unverified.append(plain)
        else:
            raise UserError(
                f"{d} has no {fname} (nor {plain}): expected torchvision's {name} idx files or its layout ({name}/raw/)"
            )
    (root / "unverified.txt").write_text("".join(f + "\n" for f in unverified))
    return root


def _read(name: str, root: Path, download: bool, origin: str) -> Dataset:
    import torchvision

    cls = getattr(torchvision.datasets, name)
    try:
        if name == "SVHN":
            tr, te = (cls(str(root), split=s, download=download) for s in ("train", "test"))
        else:
            tr, te = (cls(str(root), train=t, download=download) for t in (True, False))
    except (RuntimeError, OSError) as e:
        raise UserError(
            f"torchvision could not read {name} from {root} ({str(e).splitlines()[0]}); "
            "give --data-dir a local copy in torchvision's layout, or allow downloading"
        ) from None
    arrays = [_images(name, ds) for ds in (tr, te)]
    if name in MNIST_FAMILY:
        _check_idx(name, root, arrays)
        if (root / "unverified.txt").is_file() and (root / "unverified.txt").read_text().strip():
            origin += " (not torchvision's md5: re-compressed or uncompressed files; idx headers and sizes checked)"
    classes = tuple(str(i) for i in range(10)) if name == "SVHN" else tuple(safe_class(c) for c in tr.classes)
    return _make(name.lower(), classes, arrays[0][0], arrays[0][1], arrays[1][0], arrays[1][1], origin)


def _check_idx(name: str, root: Path, arrays) -> None:
    """The MNIST family's sizes (60,000 / 10,000 images of 28 x 28, 10 classes): torchvision's
    idx reader has already checked each file's magic number and dimensions."""
    (xtr, ytr), (xte, yte) = arrays
    if (
        xtr.shape != (60000, 28, 28, 1)
        or xte.shape != (10000, 28, 28, 1)
        or len(ytr) != 60000
        or len(yte) != 10000
        or set(np.unique(ytr).tolist()) != set(range(10))
    ):
        raise UserError(
            f"{name} in {root}: expected 60,000 / 10,000 images of 28x28 in 10 classes, got "
            f"{xtr.shape[0]:,} / {xte.shape[0]:,} of {xtr.shape[1]}x{xtr.shape[2]}"
        )


def _images(name: str, ds) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC images and int labels of a torchvision dataset object."""
    if name in MNIST_FAMILY:
        return np.asarray(ds.data, np.uint8)[..., None], np.asarray(ds.targets)
    if name == "SVHN":
        return np.asarray(ds.data, np.uint8).transpose(0, 2, 3, 1), np.asarray(ds.labels)
    return np.asarray(ds.data, np.uint8), np.asarray(ds.targets)
