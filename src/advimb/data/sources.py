"""Where a dataset comes from: CIFAR-10 (torchvision download, its python batches or their
tar.gz, an image folder or an archive of one), any image folder, or the synthetic set;
:func:`load_dataset` is the entry point. Raises :class:`advimb.errors.UserError` on bad data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from advimb.config.sections import DataConfig
from advimb.data.cache import DATASETS, cache_root, cached_dataset, extract_archive, stat_key
from advimb.data.dataset import CIFAR10_CLASSES, Dataset, _make, check_usable, transform
from advimb.data.folders import _list_image_folder, _load_image_folder
from advimb.data.synthetic import make_synthetic
from advimb.data.torchvision_sets import check_torchvision, is_torchvision, load_torchvision
from advimb.errors import UserError
from advimb.registry import Registry

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar", ".zip")


CIFAR_TGZ = "cifar-10-python.tar.gz"


CIFAR_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"  # torchvision's published checksum


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


def _layout_error(d: Path) -> UserError:
    return UserError(
        f"no dataset found in {d}: expected cifar-10-batches-py/ (official CIFAR-10), "
        f"{CIFAR_TGZ}, train/<class>/ and test/<class>/ image folders, or one archive of "
        "such folders (.tar.xz, .tar.gz, .zip); point --data-dir (or ADVIMB_DATA) at it"
    )


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
    return _make(
        "cifar10",
        CIFAR10_CLASSES,
        tr.data,
        tr.targets,
        te.data,
        te.targets,
        f"CIFAR-10 python batches {root / 'cifar-10-batches-py'}",
    )


def _unwrap(d: Path) -> Path:
    """An archive often holds one top folder: descend into it when it is the dataset."""
    if _is_image_folder(d) or _find_batches(d):
        return d
    subs = [p for p in d.iterdir() if p.is_dir()]
    if len(subs) == 1:
        return _unwrap(subs[0])
    return d


def _load_dir(cfg: DataConfig, progress: bool) -> Dataset:
    if cfg.dir is None:  # the callers check it first
        raise ValueError("_load_dir needs data.dir")
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
        key = "cifar10-batches-" + stat_key(batches, root)
        return cached_dataset(cache, key, lambda: _load_torchvision(root, download=False))
    if (d / CIFAR_TGZ).exists():
        key = "cifar10-tgz-" + stat_key([d / CIFAR_TGZ], d)

        def build() -> Dataset:
            from torchvision.datasets.utils import check_integrity

            if not check_integrity(str(d / CIFAR_TGZ), CIFAR_TGZ_MD5):
                raise UserError(f"{d / CIFAR_TGZ} fails its md5 check; the file is corrupt")
            out = extract_archive(d / CIFAR_TGZ, cache / "extracted" / key)
            return _load_torchvision(out, download=False)

        return cached_dataset(cache, key, build)
    if _is_image_folder(d):
        _, files = _list_image_folder(d)
        key = "folder-" + stat_key([p for s in ("train", "test") for p, _ in files[s]], d)
        return _check_cifar(cfg, cached_dataset(cache, key, lambda: _load_image_folder(d, name, progress)))
    archives = _archives(d)
    if len(archives) == 1:
        key = "archive-" + stat_key(archives, d)

        def build() -> Dataset:
            root = _unwrap(extract_archive(archives[0], cache / "extracted" / key))
            batches = _find_batches(root)
            if batches is not None:
                return _load_torchvision(batches, download=False)
            if not _is_image_folder(root):
                raise _layout_error(d)
            return _load_image_folder(root, name, progress, origin=f"image folder in archive {archives[0]}")

        return _check_cifar(cfg, cached_dataset(cache, key, build))
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
    if fresh or ("config", cfg) not in DATASETS:
        ds = _load_source(cfg, progress)
        check_usable(ds, cfg)
        DATASETS.forget(("config", cfg))
        DATASETS.remember(
            ("config", cfg),
            lambda: DATASETS.remember(
                ("transformed", ds.fingerprint, ds.origin, cfg.resize, cfg.pad),
                lambda: transform(ds, cfg.resize, cfg.pad),
            ),
        )
    return DATASETS[("config", cfg)]


def _torchvision_source(name: str) -> Callable[[DataConfig, bool], Dataset]:
    check_torchvision(name)  # a dataset advimb does not read fails here, before anything is loaded
    return load_torchvision


#: the dataset sources (``data.source``): advimb's own, and torchvision:<Dataset>
SOURCES: Registry[Callable[[DataConfig, bool], Dataset]] = Registry(
    "config data.source: {name!r} is not one of {names}, or torchvision:<Dataset> (e.g. torchvision:FashionMNIST)",
    sort=False,
    is_plugin=is_torchvision,
    plugin=_torchvision_source,
)


def register_source(name: str):
    """Register a dataset source ``fn(cfg: DataConfig, progress) -> Dataset`` as
    ``data.source = name``."""
    return SOURCES.register(name)


def list_sources() -> list[str]:
    return SOURCES.names()


def check_source(name: str) -> None:
    SOURCES.check(name)


def _load_source(cfg: DataConfig, progress: bool) -> Dataset:
    return SOURCES.get(cfg.source)(cfg, progress)


@register_source("cifar10")
def _cifar10(cfg: DataConfig, progress: bool) -> Dataset:
    """CIFAR-10: a local copy in ``data.dir`` (any layout), else torchvision's download."""
    if cfg.dir is not None:
        return _load_dir(cfg, progress)
    root = cache_root(cfg) / "cifar10"
    if not cfg.download and _find_batches(root) is None:
        raise UserError(f"CIFAR-10 is not in {root} and downloading is off; pass --data-dir")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cache folder {root} is not writable ({e.strerror}); set ADVIMB_CACHE") from None
    return cached_dataset(
        cache_root(cfg), "cifar10-torchvision", lambda: _load_torchvision(root, download=cfg.download)
    )


@register_source("folder")
def _folder(cfg: DataConfig, progress: bool) -> Dataset:
    """Any image-folder dataset (``train/<class>/*``, ``test/<class>/*``) in ``data.dir``."""
    if cfg.dir is None:
        raise UserError("config data.dir: source 'folder' needs a data directory (--data-dir or ADVIMB_DATA)")
    return _load_dir(cfg, progress)


@register_source("synthetic")
def _synthetic(cfg: DataConfig, progress: bool) -> Dataset:
    """The seeded synthetic dataset (``data.synthetic``), for tests and the smoke preset."""
    return DATASETS.remember(("synthetic", cfg.synthetic), lambda: make_synthetic(cfg.synthetic))
