"""The dataset as the study sees it: :class:`Dataset` (uint8 images ``(N, H, W, C)``, labels,
classes, a fingerprint of the decoded pixels), the checks every dataset passes, the
``data.resize`` / ``data.pad`` transform and the attacked test subset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from advimb.config.sections import DataConfig
from advimb.errors import UserError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


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
        h.update(a.data.cast("B"))  # a.data: the memoryview of a
    return h.hexdigest()


def _make(name, classes, xtr, ytr, xte, yte, origin) -> Dataset:
    xtr, xte = np.ascontiguousarray(xtr, np.uint8), np.ascontiguousarray(xte, np.uint8)
    ytr, yte = np.asarray(ytr, np.int64), np.asarray(yte, np.int64)
    fp = fingerprint_arrays(classes, xtr, ytr, xte, yte)
    return Dataset(name, tuple(classes), xtr, ytr, xte, yte, fp, origin)


def check_usable(ds: Dataset, cfg: DataConfig) -> None:
    """A study compares classes: refuse a dataset with fewer than two, or with a class that
    has no training or no test image."""
    where = cfg.dir or ds.origin
    if ds.num_classes < 2:
        raise UserError(
            f"{where} holds {ds.num_classes} class ({', '.join(ds.classes) or 'none'}); the study compares "
            "classes (imbalanced against balanced training), so it needs at least two class folders"
        )
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
                xt = torch.from_numpy(x[i : i + 2048]).permute(0, 3, 1, 2).float()
                xt = F.interpolate(xt, size=(resize, resize), mode="bilinear", antialias=True, align_corners=False)
                parts.append(xt.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
            x = np.concatenate(parts) if parts else np.zeros((0, resize, resize, x.shape[3]), np.uint8)
        if pad:
            x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        return np.ascontiguousarray(x)

    return dataclasses.replace(ds, x_train=one(ds.x_train), x_test=one(ds.x_test), source_shape=ds.source_shape)


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
