"""Image-folder datasets (``train/<class>/*``, ``test/<class>/*``): listing and decoding, in
parallel, keeping each image's channels (1 for grayscale, 3 for colour).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from advimb.data.dataset import Dataset, _make
from advimb.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


def _list_image_folder(root: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Class names (sorted, like torchvision's ImageFolder) and (path, label) per split."""
    train_classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    test_classes = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if not train_classes:
        raise UserError(f"{root / 'train'} holds no class folders; expected train/<class>/*.png")
    if train_classes != test_classes:
        missing = sorted(set(train_classes) ^ set(test_classes))
        raise UserError(
            f"{root}: train/ and test/ must hold the same class folders; differ in: " + ", ".join(missing[:5])
        )
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in ("train", "test"):
        items = []
        for label, c in enumerate(train_classes):
            imgs = sorted(
                p for p in (root / split / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
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
        except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
            return f"cannot decode image {p} ({type(e).__name__}: {e}); replace or delete it"
        if out[-1].shape[:2] != out[0].shape[:2]:
            return (
                f"image {p} is {out[-1].shape[1]}x{out[-1].shape[0]} but others are "
                f"{out[0].shape[1]}x{out[0].shape[0]}; all images must share one size "
                "(or set data.resize)"
            )
    return _same_channels(out)


def _same_channels(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack ``(…, H, W, C)`` arrays; when some are grayscale and some colour, the grayscale
    ones are repeated to three channels (the dataset is a colour dataset)."""
    if len({a.shape[-1] for a in arrays}) > 1:
        arrays = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in arrays]
    return np.stack(arrays) if arrays[0].ndim == 3 else np.concatenate(arrays)


def _decode_all(paths: list[Path], progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    from advimb.devices import usable_cores

    chunks = [[str(p) for p in paths[i : i + 2000]] for i in range(0, len(paths), 2000)]
    workers = min(len(chunks), usable_cores())
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
    arrays: list[np.ndarray] = []
    for r in parts:
        if isinstance(r, str):
            raise UserError(r)
        arrays.append(r)
    sizes = {r.shape[1:3] for r in arrays}
    if len(sizes) > 1:
        raise UserError(f"images have different sizes {sorted(sizes)}; all must share one size (or set data.resize)")
    return _same_channels(arrays)


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
