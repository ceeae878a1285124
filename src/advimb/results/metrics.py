"""The grid's quantities, each defined once, from per-image outcomes, with bootstrap replicates.

Every quantity is in percent and comes as ``(point, replicates)``: the point estimate (the
mean over seeds of the per-seed value) and its ``(n_boot,)`` replicates from
:class:`advimb.results.stats.Bootstrap` (seeds resampled, then test images within each class), so
``Bootstrap.interval`` turns it into a 95% percentile interval and arithmetic on two
quantities of the same class's images is paired.

Definitions (paper Sec. 3-4):

- accuracy of class c under attack: share of c's attacked test images still predicted c;
- clean accuracy of the attacked images: the same images before the attack;
- relative difference (Fig. 4): 100 * (clean - attacked) / clean, **both on the attacked
  images**, so the two accuracies are paired; undefined when the clean accuracy is 0;
- clean accuracy of a model (Fig. 2, the clean tables): on the **full test set** (every
  image of every class, whatever ``eval.test_per_class`` attacked), per class and overall
  (overall = per-class accuracies weighted by the class's test images);
- flip rate (Fig. 6): share of c's attacked images predicted as each label.

When every test image of a class is attacked (``eval.test_per_class = 0``, the paper's
setting) the clean accuracy of the attacked images and the full test set's coincide.
"""

from __future__ import annotations

import numpy as np

from advimb.results.reader import GridResults
from advimb.results.stats import Bootstrap, Estimate, mean_over_groups

Quantity = tuple[float, np.ndarray]


def relative_difference(clean: Quantity, attacked: Quantity) -> Quantity:
    """100 * (clean - attacked) / clean of two paired quantities; NaN where clean is 0."""
    (pc, rc), (pa, ra) = clean, attacked
    with np.errstate(divide="ignore", invalid="ignore"):
        return (100 * (pc - pa) / pc if pc > 0 else float("nan"), np.where(rc > 0, 100 * (rc - ra) / rc, np.nan))


def difference(a: Quantity, b: Quantity) -> Quantity:
    return a[0] - b[0], a[1] - b[1]


class GridMetrics:
    """The paper grid's quantities of one run (all seeds), computed on demand and cached."""

    def __init__(self, res: GridResults, boot: Bootstrap) -> None:
        self.res, self.boot = res, boot
        self._cache: dict[tuple, object] = {}

    def _memo(self, key: tuple, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def label(self, c: str) -> int:
        return self.res.classes.index(c)

    def accuracy(self, c: str, kind: str, grad: str, which: str = "adv", label: str | None = None) -> Quantity:
        """Percent of class ``c``'s attacked images predicted as ``label`` (default: ``c``,
        i.e. the accuracy), ``clean`` before or ``adv`` after the attack."""
        lab = self.label(label or c)

        def run() -> Quantity:
            # key = the images: the same class -> the same resample, whichever model or label
            return self.boot.mean(
                [100.0 * (getattr(e, which) == lab) for e in self.res.cell(c, kind, grad)], key=("attacked", c)
            )

        return self._memo(("acc", c, kind, grad, which, lab), run)

    def relative_difference(self, c: str, kind: str, grad: str = "same_model") -> Quantity:
        return relative_difference(self.accuracy(c, kind, grad, "clean"), self.accuracy(c, kind, grad, "adv"))

    def shares(self, c: str, kind: str, grad: str, which: str = "adv") -> tuple[np.ndarray, np.ndarray]:
        """Percent of class ``c``'s attacked images predicted as each label: ``(C,)``, ``(n_boot, C)``."""
        return self._memo(
            ("shares", c, kind, grad, which),
            lambda: self.boot.shares(
                [getattr(e, which) for e in self.res.cell(c, kind, grad)], ("attacked", c), len(self.res.classes)
            ),
        )

    def clean_class(self, model: str, c: str) -> Quantity:
        """Clean accuracy (%) of ``model`` on the full test set of class ``c``."""
        i = self.label(c)
        # its own key per model: the stored counts carry no image order, so two models' clean
        # accuracies must not be paired
        return self._memo(
            ("clean", model, c),
            lambda: self.boot.mean([e.correct(i) for e in self.res.clean[model]], key=("test set", model, c)),
        )

    def clean_overall(self, model: str) -> Quantity:
        """Clean accuracy (%) of ``model`` on the full test set."""
        evals = self.res.clean[model]
        per = [self.clean_class(model, c) for c in self.res.classes]
        return mean_over_groups([p for p, _ in per], [r for _, r in per], weights=evals[0].n_per_class)

    def mean_over_targets(self, fn) -> Quantity:
        """Mean over the studied classes of ``fn(c)`` (strict: undefined if any class is)."""
        per = [fn(c) for c in self.res.targets]
        return mean_over_groups([p for p, _ in per], [r for _, r in per])

    def estimate(self, q: Quantity) -> Estimate:
        return self.boot.interval(*q)
