"""Confidence intervals and verdicts for the paper's claims.

The unit of resampling is a test image, within its class (a stratified bootstrap): the
accuracy of a class is a mean over its attacked test images, and the study's quantities
are means over classes. Two quantities measured on the same images (same-model accuracy of
the balanced and the under-sampled model on the cat images, say) are resampled with the
same indices, so differences get a *paired* interval. When a run has several seeds, each
replicate first resamples seeds (with replacement) and then images within each seed
(a two-level bootstrap), so the interval covers training randomness as well.

Intervals are percentile intervals of ``n_boot`` replicates (default 2,000, 95%).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: verdicts a claim can get
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile interval (same units as the data)."""

    value: float
    lo: float
    hi: float

    def to_dict(self, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
        return {k: _round(getattr(self, k) * scale, digits) for k in ("value", "lo", "hi")}


def _round(x: float, digits: int) -> float:
    return float("nan") if not np.isfinite(x) else round(float(x), digits)


class Bootstrap:
    """Paired, stratified percentile bootstrap over images (and seeds).

    ``mean(values_by_seed, key)`` returns the point estimate and the ``(n_boot,)``
    replicates of the mean of one group of images (one class, typically). Every call with
    the same ``key`` and the same number of images resamples the same indices, so
    arithmetic on replicates of one key (differences, ratios) is paired. Different keys
    get independent draws; everything is a deterministic function of ``seed``.
    """

    def __init__(self, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
        if n_boot < 100:
            raise ValueError("n_boot must be at least 100")
        self.n_boot, self.seed, self.level = n_boot, seed, level
        self._cache: dict[tuple[object, int, int], np.ndarray] = {}

    def _rng(self, *key: object) -> np.random.Generator:
        h = hashlib.sha256(repr((self.seed, key)).encode()).digest()
        return np.random.default_rng(int.from_bytes(h[:8], "little"))

    def _indices(self, key: object, seed_index: int, n: int) -> np.ndarray:
        # a claim asks for the same class's resample many times (each model, clean and
        # perturbed, each label): draw it once
        k = (key, seed_index, n)
        if k not in self._cache:
            self._cache[k] = self._rng("images", key, seed_index, n).integers(0, n, size=(self.n_boot, n))
        return self._cache[k]

    def _seed_draws(self, n_seeds: int) -> np.ndarray:
        return self._rng("seeds", n_seeds).integers(0, n_seeds, size=(self.n_boot, n_seeds))

    def mean(self, values_by_seed: Sequence[np.ndarray], key: object) -> tuple[float, np.ndarray]:
        """Mean of per-image ``values`` (one array per seed) and its bootstrap replicates."""
        per_seed, points = [], []
        for s, v in enumerate(values_by_seed):
            v = np.asarray(v, dtype=np.float64)
            if v.size == 0:
                per_seed.append(np.full(self.n_boot, np.nan))
                points.append(np.nan)
                continue
            per_seed.append(v[self._indices(key, s, v.size)].mean(1))
            points.append(v.mean())
        reps = np.stack(per_seed, 1)  # (n_boot, seeds)
        if reps.shape[1] > 1:
            draws = self._seed_draws(reps.shape[1])
            reps = np.take_along_axis(reps, draws, 1)
        return float(np.mean(points)), reps.mean(1)

    def interval(self, point: float, reps: np.ndarray) -> Estimate:
        """Percentile interval of ``reps`` around ``point`` (NaN replicates ignored)."""
        reps = np.asarray(reps, dtype=np.float64)
        reps = reps[np.isfinite(reps)]
        if not np.isfinite(point) or reps.size < self.n_boot // 2:
            return Estimate(point, float("nan"), float("nan"))
        a = (1 - self.level) / 2
        lo, hi = np.quantile(reps, [a, 1 - a])
        return Estimate(float(point), float(lo), float(hi))


def mean_over_groups(points: Sequence[float], reps: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
    """Average of per-group estimates (classes), ignoring groups that are NaN."""
    p = np.asarray(points, dtype=np.float64)
    r = np.stack(reps, 0) if len(reps) else np.zeros((0, 1))
    with warnings.catch_warnings():  # an all-NaN column is a legitimate "not measured"
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(p)) if np.isfinite(p).any() else float("nan"), np.nanmean(r, 0)


def verdict(differences: Sequence[Estimate]) -> str:
    """The verdict on a directional claim made of one or more comparisons, each given as
    the interval of a difference that the claim says is positive.

    ``reproduced`` when every interval lies above 0; ``not reproduced`` when any interval
    lies below 0 (the data contradict the claim's direction); ``inconclusive`` otherwise
    (an interval contains 0, or a quantity could not be measured).
    """
    if not differences:
        return INCONCLUSIVE
    if any(np.isfinite(d.hi) and d.hi < 0 for d in differences):
        return NOT_REPRODUCED
    if all(np.isfinite(d.lo) and d.lo > 0 for d in differences):
        return REPRODUCED
    return INCONCLUSIVE
