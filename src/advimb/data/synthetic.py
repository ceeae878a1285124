"""A seeded, class-structured synthetic dataset for tests and the smoke preset."""

from __future__ import annotations

import numpy as np

from advimb.config.sections import SyntheticConfig
from advimb.data.dataset import Dataset, _make


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
