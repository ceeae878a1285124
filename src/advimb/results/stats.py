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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advimb.errors import UserError

#: verdicts of a sign test (a claim's differences): every interval above 0, any below 0,
#: neither, or a difference that could not be measured
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_MEASURABLE = "not measurable"
#: the default number of bootstrap replicates, for every table, claim and report
N_BOOT = 2000
#: the fewest replicates a 95% percentile interval is computed from
MIN_BOOT = 100


def check_n_boot(n: int, name: str = "n_boot") -> None:
    """A one-line :class:`UserError` for too few bootstrap replicates (``name``: how the caller
    spells the setting, ``--n-boot`` on the command line)."""
    if n < MIN_BOOT:
        raise UserError(f"{name} {n} is too small for a 95% interval; use at least {MIN_BOOT} (default {N_BOOT})")


def interval_method(n_boot: int = N_BOOT, seeds: int = 1, level: float = 0.95) -> str:
    """The one interval method of every table and of the report, in words."""
    how = (
        f"the {seeds} seeds resampled, then the test images within each class of each seed"
        if seeds > 1
        else "test images resampled within each class"
    )
    return f"{100 * level:g}% percentile bootstrap ({n_boot:,} replicates; {how})"


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile interval (same units as the data)."""

    value: float
    lo: float
    hi: float

    def to_dict(self, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
        """The estimate as ``{value, lo, hi}`` (the report's and claims' form)."""
        return {k: _round(getattr(self, k) * scale, digits) for k in ("value", "lo", "hi")}

    def columns(self, name: str) -> dict[str, float]:
        """The estimate as a table's three columns, ``name``, ``name_lo`` and ``name_hi`` (every
        table of a run folder writes an estimate this way)."""
        return {name: self.value, f"{name}_lo": self.lo, f"{name}_hi": self.hi}

    @classmethod
    def from_columns(cls, row: Mapping[str, Any], name: str) -> Estimate:
        """The estimate a table's row holds as :meth:`Estimate.columns` (a missing or empty
        bound: NaN)."""

        def num(x: Any) -> float:
            return float("nan") if x is None or x == "" else float(x)

        return cls(num(row.get(name)), num(row.get(f"{name}_lo")), num(row.get(f"{name}_hi")))

    @property
    def bounds(self) -> list[float]:
        """The interval as ``[lo, hi]`` (``summary.json``'s form, beside its value)."""
        return [self.lo, self.hi]

    def exact(self) -> dict[str, float | None]:
        """``{value, lo, hi}`` unrounded, an undefined number as None (the form the report's
        page formats, :func:`advimb.report.text.ci`)."""
        return {
            k: (float(v) if np.isfinite(v) else None)
            for k, v in (("value", self.value), ("lo", self.lo), ("hi", self.hi))
        }


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

    def __init__(self, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95):
        check_n_boot(n_boot)
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

    def shares(
        self, labels_by_seed: Sequence[np.ndarray], key: object, num_classes: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Percent of images predicted as each label: points ``(C,)`` and replicates
        ``(n_boot, C)``, paired with :meth:`Bootstrap.mean` calls of the same ``key`` (the same resample)."""
        per_seed, points = [], []
        for s, lab in enumerate(labels_by_seed):
            lab = np.asarray(lab, dtype=np.int64)
            if lab.size == 0:
                per_seed.append(np.full((self.n_boot, num_classes), np.nan))
                points.append(np.full(num_classes, np.nan))
                continue
            res = lab[self._indices(key, s, lab.size)]  # (n_boot, n)
            per_seed.append(np.stack([(res == c).mean(1) for c in range(num_classes)], 1) * 100.0)
            points.append(np.bincount(lab, minlength=num_classes)[:num_classes] * 100.0 / lab.size)
        reps = np.stack(per_seed, 1)  # (n_boot, seeds, C)
        if reps.shape[1] > 1:
            draws = self._seed_draws(reps.shape[1])
            reps = np.take_along_axis(reps, draws[:, :, None], 1)
        return np.mean(points, 0), reps.mean(1)

    def interval(self, point: float, reps: np.ndarray) -> Estimate:
        """Percentile interval of ``reps`` around ``point``. A replicate can be undefined (a
        relative difference whose resampled clean accuracy is 0); the interval is given only
        when at least 99% of the replicates are defined, so that leaving the others out cannot
        move it noticeably, and is undefined otherwise."""
        reps = np.asarray(reps, dtype=np.float64)
        reps = reps[np.isfinite(reps)]
        if not np.isfinite(point) or reps.size < 0.99 * self.n_boot:
            return Estimate(point, float("nan"), float("nan"))
        a = (1 - self.level) / 2
        lo, hi = np.quantile(reps, [a, 1 - a])
        return Estimate(float(point), float(lo), float(hi))


def mean_over_groups(
    points: Sequence[float], reps: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Average of per-group estimates (classes; weighted by ``weights`` if given). Strict:
    a group that is undefined (NaN) makes the average undefined, since an average over
    fewer groups would be a different quantity; a replicate where a group is NaN is NaN."""
    p = np.asarray(points, dtype=np.float64)
    if not len(p):
        return float("nan"), np.full(1, np.nan)
    r = np.stack(reps, 0)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    point = float((w * p).sum()) if np.isfinite(p).all() else float("nan")
    return point, (w[:, None] * r).sum(0)  # row by row: the same sums on every machine


def verdict(differences: Sequence[Estimate]) -> str:
    """The verdict on a directional claim made of one or more comparisons, each given as
    the interval of a difference that the claim says is positive.

    It tests the *sign* of each difference, not its size: ``reproduced`` when every
    interval lies above 0; ``not reproduced`` when any interval lies below 0 (the data
    contradict the claim's direction); ``inconclusive`` when an interval contains 0; ``not
    measurable`` when a difference has no interval (a quantity undefined in this run).
    """
    if not differences or any(not np.isfinite(d.lo) for d in differences):
        return NOT_MEASURABLE
    if any(d.hi < 0 for d in differences):
        return NOT_REPRODUCED
    if all(d.lo > 0 for d in differences):
        return REPRODUCED
    return INCONCLUSIVE
