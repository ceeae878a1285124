"""Datasets as uint8 arrays: CIFAR-10 (torchvision download or a local copy in any of its
layouts), any image-folder dataset, and a seeded synthetic dataset for tests.

Every loader returns a :class:`Dataset` whose images are ``(N, H, W, C)`` uint8 in [0, 255]
(the model scales to [0, 1]; C = 1 for a grayscale dataset, 3 for colour: images keep their
channels) and whose labels are int64 class indices into ``classes``.
Decoded arrays are cached (``<cache>/arrays/<key>.npz``) so a second load takes a fraction
of a second; the key is derived from the source files' paths, sizes and mtimes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advimb.artifacts import write_json, write_npz
from advimb.config import DataConfig, SyntheticConfig
from advimb.errors import UserError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar", ".zip")
CIFAR_TGZ = "cifar-10-python.tar.gz"
CIFAR_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"  # torchvision's published checksum


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images ``(N, H, W, C)`` uint8 (C = 1 or 3) and labels ``(N,)`` int64, train and test.
    ``fingerprint`` is the sha256 of the decoded source images (before ``data.resize`` /
    ``data.pad``, which the config records)."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    fingerprint: str
    origin: str
    source_shape: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if self.source_shape == (0, 0, 0):  # the images as decoded, before resize / pad
            object.__setattr__(self, "source_shape", self.image_shape)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) as the model sees it."""
        _, h, w, c = self.x_train.shape
        return (c, h, w)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "origin": self.origin,
            "classes": list(self.classes),
            "fingerprint": self.fingerprint,
            "train_per_class": np.bincount(self.y_train, minlength=self.num_classes).tolist(),
            "test_per_class": np.bincount(self.y_test, minlength=self.num_classes).tolist(),
            "image_shape": list(self.image_shape),
            **({"source_image_shape": list(self.source_shape)} if self.source_shape != self.image_shape else {}),
        }


def fingerprint_arrays(classes, x_train, y_train, x_test, y_test) -> str:
    """sha256 of the decoded content: two copies of a dataset with equal pixels match."""
    h = hashlib.sha256(json.dumps(list(classes)).encode())
    for a in (x_train, y_train, x_test, y_test):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _make(name, classes, xtr, ytr, xte, yte, origin) -> Dataset:
    xtr, xte = np.ascontiguousarray(xtr, np.uint8), np.ascontiguousarray(xte, np.uint8)
    ytr, yte = np.asarray(ytr, np.int64), np.asarray(yte, np.int64)
    fp = fingerprint_arrays(classes, xtr, ytr, xte, yte)
    return Dataset(name, tuple(classes), xtr, ytr, xte, yte, fp, origin)


# ----------------------------------------------------------------------------- synthetic


def make_synthetic(cfg: SyntheticConfig) -> Dataset:
    """Class-structured 32x32 RGB images, made procedurally (not noise).

    Class k is an oriented sinusoidal grating (angle and frequency set by k) tinted with
    a class colour, with a random phase, contrast, a bright blob at a random place and
    pixel noise. Classes 3 and 5 share nearly the same orientation and colour, so they
    are confusable, like CIFAR-10's cat and dog.
    """
    rng = np.random.default_rng(cfg.seed)
    k = np.arange(cfg.classes)
    angle = np.pi * k / cfg.classes
    freq = 1.5 + 2.5 * ((k * 7) % cfg.classes) / cfg.classes
    colour = rng.uniform(0.2, 0.9, size=(cfg.classes, 3))
    if cfg.classes > 5:  # a confusable pair, like cat/dog
        angle[5] = angle[3] + 0.15
        freq[5] = freq[3] * 1.1
        colour[5] = colour[3] * 0.9 + 0.05
    yy, xx = np.mgrid[0:32, 0:32] / 32.0

    def draw(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(k, n_per_class)
        n = labels.size
        phase = rng.uniform(0, 2 * np.pi, n)
        contrast = rng.uniform(0.25, 0.5, n)
        a = angle[labels] + rng.normal(0, 0.08, n)
        f = freq[labels] * rng.uniform(0.9, 1.1, n)
        proj = xx[None] * np.cos(a)[:, None, None] + yy[None] * np.sin(a)[:, None, None]
        grating = np.sin(2 * np.pi * f[:, None, None] * proj + phase[:, None, None])
        cx, cy = rng.uniform(0.2, 0.8, (2, n))
        blob = np.exp(-((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2) / 0.01)
        base = 0.5 + contrast[:, None, None] * grating
        tint = colour[labels][:, None, None, :] * rng.uniform(0.8, 1.2, (n, 1, 1, 3))
        img = base[..., None] * tint + 0.3 * blob[..., None]
        img += rng.normal(0, 0.06, img.shape)
        order = rng.permutation(n)
        x = np.clip(img * 255.0, 0, 255).round().astype(np.uint8)
        return x[order], labels[order]

    xtr, ytr = draw(cfg.train_per_class)
    xte, yte = draw(cfg.test_per_class)
    names = tuple(f"class{i}" for i in range(cfg.classes))
    return _make("synthetic", names, xtr, ytr, xte, yte, f"synthetic(seed={cfg.seed})")


# ----------------------------------------------------------------------------- layouts


def _find_batches(d: Path) -> Path | None:
    """Folder that holds ``cifar-10-batches-py`` (torchvision's root), if any."""
    if (d / "cifar-10-batches-py" / "data_batch_1").exists():
        return d
    if d.name == "cifar-10-batches-py" and (d / "data_batch_1").exists():
        return d.parent
    return None


def _is_image_folder(d: Path) -> bool:
    return (d / "train").is_dir() and (d / "test").is_dir()


def _archives(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))


def _stat_key(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _layout_error(d: Path) -> UserError:
    return UserError(
        f"no dataset found in {d}: expected cifar-10-batches-py/ (official CIFAR-10), "
        f"{CIFAR_TGZ}, train/<class>/ and test/<class>/ image folders, or one archive of "
        "such folders (.tar.xz, .tar.gz, .zip); point --data-dir (or ADVIMB_DATA) at it"
    )


def _list_image_folder(root: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Class names (sorted, like torchvision's ImageFolder) and (path, label) per split."""
    train_classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    test_classes = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if not train_classes:
        raise UserError(f"{root / 'train'} holds no class folders; expected train/<class>/*.png")
    if train_classes != test_classes:
        missing = sorted(set(train_classes) ^ set(test_classes))
        raise UserError(
            f"{root}: train/ and test/ must hold the same class folders; differ in: "
            + ", ".join(missing[:5])
        )
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in ("train", "test"):
        items = []
        for label, c in enumerate(train_classes):
            imgs = sorted(
                p for p in (root / split / c).iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not imgs:
                raise UserError(f"{root / split / c} holds no images (.png, .jpg, ...)")
            items += [(p, label) for p in imgs]
        files[split] = items
    return train_classes, files


#: PIL modes decoded as one grayscale channel; every other mode becomes RGB
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _decode_chunk(paths: list[str]) -> np.ndarray | str:
    """Decode ``paths`` to ``(N, H, W, C)`` uint8: C = 1 when every image is grayscale, else
    3 (grayscale images of a mixed chunk are repeated to three channels); or an error line."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                gray = im.mode in GRAY_MODES
                a = np.asarray(im.convert("L" if gray else "RGB"))
                out.append(a[..., None] if gray else a)
        except Exception as e:  # PIL raises many types for bad files
            return f"cannot decode image {p} ({type(e).__name__}: {e}); replace or delete it"
        if out[-1].shape[:2] != out[0].shape[:2]:
            return (f"image {p} is {out[-1].shape[1]}x{out[-1].shape[0]} but others are "
                    f"{out[0].shape[1]}x{out[0].shape[0]}; all images must share one size "
                    "(or set data.resize)")
    return _same_channels(out)


def _same_channels(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack ``(…, H, W, C)`` arrays; when some are grayscale and some colour, the grayscale
    ones are repeated to three channels (the dataset is a colour dataset)."""
    if len({a.shape[-1] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in arrays]
    return np.stack(arrays) if arrays[0].ndim == 3 else np.concatenate(arrays)


def _decode_all(paths: list[Path], progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    chunks = [[str(p) for p in paths[i:i + 2000]] for i in range(0, len(paths), 2000)]
    workers = min(len(chunks), os.cpu_count() or 1)
    bar = tqdm(total=len(paths), desc="decoding images", unit="img", disable=not progress)
    parts = []
    try:
        if workers > 1:
            with ProcessPoolExecutor(workers) as ex:
                results = ex.map(_decode_chunk, chunks)
                for chunk, r in zip(chunks, results):
                    parts.append(r)
                    bar.update(len(chunk))
        else:
            for chunk in chunks:
                parts.append(_decode_chunk(chunk))
                bar.update(len(chunk))
    finally:
        bar.close()
    for r in parts:
        if isinstance(r, str):
            raise UserError(r)
    sizes = {r.shape[1:3] for r in parts}
    if len(sizes) > 1:
        raise UserError(f"images have different sizes {sorted(sizes)}; all must share one size (or set data.resize)")
    return _same_channels(parts)


def _load_image_folder(root: Path, name: str, progress: bool, origin: str | None = None) -> Dataset:
    classes, files = _list_image_folder(root)
    arrays = {}
    for split in ("train", "test"):
        paths = [p for p, _ in files[split]]
        arrays[split] = (_decode_all(paths, progress), np.array([lab for _, lab in files[split]]))
    if arrays["train"][0].shape[1:3] != arrays["test"][0].shape[1:3]:
        raise UserError(f"{root}: train and test images differ in size")
    if arrays["train"][0].shape[3] != arrays["test"][0].shape[3]:  # one split grayscale, one colour
        arrays = {k: (np.repeat(x, 3, axis=-1) if x.shape[3] == 1 else x, y) for k, (x, y) in arrays.items()}
    return _make(name, classes, *arrays["train"], *arrays["test"], origin or f"image folder {root}")


def _load_torchvision(root: Path, download: bool) -> Dataset:
    """CIFAR-10 through torchvision (md5-checked batches; downloads when asked)."""
    import torchvision

    try:
        tr = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        te = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted."
        raise UserError(
            f"CIFAR-10 batches in {root} are missing or corrupt ({e}); re-download them or "
            "point --data-dir at a good copy"
        ) from None
    except OSError as e:  # no network, DNS failure, ...
        raise UserError(
            f"could not download CIFAR-10 into {root} ({e}); on an offline machine pass "
            "--data-dir (or ADVIMB_DATA) with a local copy"
        ) from None
    if tuple(tr.classes) != CIFAR10_CLASSES:
        raise UserError(f"{root}: unexpected CIFAR-10 class list {tr.classes}")
    return _make("cifar10", CIFAR10_CLASSES, tr.data, tr.targets, te.data, te.targets,
                 f"CIFAR-10 python batches {root / 'cifar-10-batches-py'}")


def _extract(archive: Path, dest: Path) -> Path:
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


def _unwrap(d: Path) -> Path:
    """An archive often holds one top folder: descend into it when it is the dataset."""
    if _is_image_folder(d) or _find_batches(d):
        return d
    subs = [p for p in d.iterdir() if p.is_dir()]
    if len(subs) == 1:
        return _unwrap(subs[0])
    return d


# ----------------------------------------------------------------------------- cache


def cache_root(cfg: DataConfig) -> Path:
    root = cfg.cache_dir or os.environ.get("ADVIMB_CACHE") or Path.home() / ".cache" / "advimb"
    return Path(root).expanduser()


#: bump when what a cache entry holds changes, so old entries are not reused (v2: grayscale
#: images keep one channel instead of being converted to RGB)
CACHE_VERSION = "v2"


#: datasets this process has loaded, by a key that changes when the files do (paths, sizes,
#: mtimes): a second study in the same process reuses them, and sees a changed folder anew
_MEMORY: dict[tuple, Dataset] = {}


def _remember(key: tuple, build) -> Dataset:
    if key not in _MEMORY:
        if len(_MEMORY) >= 8:
            _MEMORY.pop(next(iter(_MEMORY)))
        _MEMORY[key] = build()
    return _MEMORY[key]


def _cached(cache: Path, key: str, build) -> Dataset:
    return _remember(("source", str(cache), key), lambda: _cached_on_disk(cache, key, build))


def _cached_on_disk(cache: Path, key: str, build) -> Dataset:
    npz = cache / "arrays" / f"{key}-{CACHE_VERSION}.npz"
    meta = npz.with_suffix(".json")
    if npz.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
            with np.load(npz) as z:
                arrays = [z[n] for n in ("x_train", "y_train", "x_test", "y_test")]
            return Dataset(info["name"], tuple(info["classes"]), *arrays,
                           info["fingerprint"], info["origin"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            print(f"advimb: cached arrays {npz} are unreadable; decoding the data again")
    ds = build()
    try:
        write_npz(npz, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        write_json(meta, {"name": ds.name, "classes": list(ds.classes),
                          "fingerprint": ds.fingerprint, "origin": ds.origin})
    except OSError as e:
        print(f"advimb: could not cache decoded arrays in {npz.parent} ({e.strerror}); "
              "set --set data.cache_dir=... to a writable folder to make later loads fast")
    return ds


# ----------------------------------------------------------------------------- entry point


def _load_dir(cfg: DataConfig, progress: bool) -> Dataset:
    d = Path(cfg.dir).expanduser()
    if not d.exists():
        raise UserError(f"data directory {d} does not exist; check --data-dir or ADVIMB_DATA")
    if not d.is_dir():
        raise UserError(f"data path {d} is not a directory; --data-dir takes a folder")
    cache = cache_root(cfg)
    name = "cifar10" if cfg.source == "cifar10" else d.name
    root = _find_batches(d)
    if root is not None:
        batches = sorted((root / "cifar-10-batches-py").iterdir())
        key = "cifar10-batches-" + _stat_key(batches, root)
        return _cached(cache, key, lambda: _load_torchvision(root, download=False))
    if (d / CIFAR_TGZ).exists():
        key = "cifar10-tgz-" + _stat_key([d / CIFAR_TGZ], d)

        def build() -> Dataset:
            from torchvision.datasets.utils import check_integrity

            if not check_integrity(str(d / CIFAR_TGZ), CIFAR_TGZ_MD5):
                raise UserError(f"{d / CIFAR_TGZ} fails its md5 check; the file is corrupt")
            out = _extract(d / CIFAR_TGZ, cache / "extracted" / key)
            return _load_torchvision(out, download=False)

        return _cached(cache, key, build)
    if _is_image_folder(d):
        classes, files = _list_image_folder(d)
        key = "folder-" + _stat_key([p for s in ("train", "test") for p, _ in files[s]], d)
        return _check_cifar(cfg, _cached(cache, key, lambda: _load_image_folder(d, name, progress)))
    archives = _archives(d)
    if len(archives) == 1:
        key = "archive-" + _stat_key(archives, d)

        def build() -> Dataset:
            root = _unwrap(_extract(archives[0], cache / "extracted" / key))
            batches = _find_batches(root)
            if batches is not None:
                return _load_torchvision(batches, download=False)
            if not _is_image_folder(root):
                raise _layout_error(d)
            return _load_image_folder(root, name, progress, origin=f"image folder in archive {archives[0]}")

        return _check_cifar(cfg, _cached(cache, key, build))
    raise _layout_error(d)


def _check_cifar(cfg: DataConfig, ds: Dataset) -> Dataset:
    if cfg.source == "cifar10" and ds.classes != CIFAR10_CLASSES:
        raise UserError(
            f"{cfg.dir} holds classes {', '.join(ds.classes[:12])} - not CIFAR-10; "
            "for another image-folder dataset use --set data.source=folder"
        )
    return ds


def load_dataset(cfg: DataConfig, progress: bool = False, fresh: bool = False) -> Dataset:
    """Load (and cache) the dataset that ``cfg`` names, checked and with ``data.resize`` /
    ``data.pad`` applied. Raises :class:`UserError`. Within a process a second call returns the
    same arrays without looking at the files again, unless ``fresh`` (a study starting): then
    the files' sizes and mtimes are checked, and changed files are read anew."""
    if fresh or ("config", cfg) not in _MEMORY:
        ds = _load_source(cfg, progress)
        check_usable(ds, cfg)
        _MEMORY.pop(("config", cfg), None)
        _remember(("config", cfg), lambda: _remember(("transformed", ds.fingerprint, ds.origin, cfg.resize, cfg.pad),
                                                    lambda: transform(ds, cfg.resize, cfg.pad)))
    return _MEMORY[("config", cfg)]


load_dataset.cache_clear = _MEMORY.clear  # type: ignore[attr-defined]  # forget what this process loaded


def check_usable(ds: Dataset, cfg: DataConfig) -> None:
    """A study compares classes: refuse a dataset with fewer than two, or with a class that
    has no training or no test image."""
    where = cfg.dir or ds.origin
    if ds.num_classes < 2:
        raise UserError(
            f"{where} holds {ds.num_classes} class ({', '.join(ds.classes) or 'none'}); the study compares "
            "classes (imbalanced against balanced training), so it needs at least two class folders")
    for split, y in (("training", ds.y_train), ("test", ds.y_test)):
        n = np.bincount(y, minlength=ds.num_classes)
        if (n == 0).any():
            c = ds.classes[int(np.argmin(n))]
            raise UserError(f"{where}: class {c!r} has no {split} images; every class needs both")


def transform(ds: Dataset, resize: int = 0, pad: int = 0) -> Dataset:
    """``ds`` with every image resized to ``resize`` x ``resize`` (bilinear, antialiased; 0 =
    keep) and then ``pad`` pixels of zeros added on every side (0 = none). Deterministic
    (CPU), so the same config gives the same pixels."""
    if not resize and not pad:
        return ds

    def one(x: np.ndarray) -> np.ndarray:
        if resize and x.shape[1:3] != (resize, resize):
            import torch
            import torch.nn.functional as F

            parts = []
            for i in range(0, len(x), 2048):
                xt = torch.from_numpy(x[i:i + 2048]).permute(0, 3, 1, 2).float()
                xt = F.interpolate(xt, size=(resize, resize), mode="bilinear", antialias=True, align_corners=False)
                parts.append(xt.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
            x = np.concatenate(parts) if parts else np.zeros((0, resize, resize, x.shape[3]), np.uint8)
        if pad:
            x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        return np.ascontiguousarray(x)

    return dataclasses.replace(ds, x_train=one(ds.x_train), x_test=one(ds.x_test), source_shape=ds.source_shape)


def _load_source(cfg: DataConfig, progress: bool) -> Dataset:
    if cfg.source == "synthetic":
        return _remember(("synthetic", cfg.synthetic), lambda: make_synthetic(cfg.synthetic))
    if cfg.dir is not None:
        return _load_dir(cfg, progress)
    root = cache_root(cfg) / "cifar10"
    if not cfg.download and _find_batches(root) is None:
        raise UserError(f"CIFAR-10 is not in {root} and downloading is off; pass --data-dir")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cache folder {root} is not writable ({e.strerror}); set ADVIMB_CACHE") from None
    return _cached(cache_root(cfg), "cifar10-torchvision",
                   lambda: _load_torchvision(root, download=cfg.download))


def eval_subset(ds: Dataset, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` test images of every class (0 = all), sorted."""
    if per_class == 0:
        return np.arange(len(ds.y_test))
    idx = []
    for c in range(ds.num_classes):
        members = np.flatnonzero(ds.y_test == c)
        if len(members) < per_class:
            raise UserError(
                f"class {ds.classes[c]!r} has {len(members)} test images but "
                f"eval.test_per_class asks for {per_class}; lower it (0 = all)"
            )
        idx.append(members[:per_class])
    return np.sort(np.concatenate(idx))
