"""Every quantity of a run, each defined once, from per-image outcomes, with bootstrap replicates.

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
- flip rate (Fig. 6): share of c's attacked images predicted as each label;
- a combination's summary (the sweeps' tables): accuracy before and after, success rate on
  the images classified correctly before, and the minimal-eps statistics.

When every test image of a class is attacked (``eval.test_per_class = 0``, the paper's
setting) the clean accuracy of the attacked images and the full test set's coincide.

:class:`Metrics` addresses a quantity by scenarios (evaluated model, gradient model, class);
:class:`GridMetrics` is the paper grid's view of it, addressed by Table 1's (class, kind,
gradient), and computes nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from advimb.layout import GRID
from advimb.results.reader import CleanEval, Combination, GridResults, Outcomes, Point, grid_models
from advimb.results.stats import Bootstrap, Estimate, mean_over_groups
from advimb.scenario import Gradient, Kind, Scenario

Quantity = tuple[float, np.ndarray]
#: a share per label: ``(C,)`` points, ``(n_boot, C)`` replicates
Shares = tuple[np.ndarray, np.ndarray]


def relative_difference(clean: Quantity, attacked: Quantity) -> Quantity:
    """100 * (clean - attacked) / clean of two paired quantities; NaN where clean is 0."""
    (pc, rc), (pa, ra) = clean, attacked
    with np.errstate(divide="ignore", invalid="ignore"):
        return (100 * (pc - pa) / pc if pc > 0 else float("nan"), np.where(rc > 0, 100 * (rc - ra) / rc, np.nan))


def difference(a: Quantity, b: Quantity) -> Quantity:
    return a[0] - b[0], a[1] - b[1]


def min_eps_summary(me: np.ndarray, eps_max: float) -> dict[str, Any]:
    """The minimal FGSM eps of the images it was searched for (inf: not flipped up to ``eps_max``)."""
    fin = me[np.isfinite(me)]
    return {
        "min_eps_max": eps_max,
        "min_eps_flippable_share": float(len(fin) / len(me)) if len(me) else float("nan"),
        "min_eps_mean": float(fin.mean()) if len(fin) else float("nan"),
        "min_eps_median": float(np.median(fin)) if len(fin) else float("nan"),
    }


def combination_summary(c: Combination, label: int) -> dict[str, Any]:
    """One combination's shares (0-1) in one seed, ``label`` its class's index: accuracy before
    and after the attack, and the success rate and minimal eps on the images correct before."""
    n, correct = c.n, c.clean == label
    out = {
        "n": n,
        "clean_accuracy": float(correct.mean()) if n else float("nan"),
        "adversarial_accuracy": float((c.adv == label).mean()) if n else float("nan"),
        "n_clean_correct": int(correct.sum()),
        "success_rate": float((c.adv[correct] != label).mean()) if correct.any() else float("nan"),
    }
    if c.min_eps is not None and c.min_eps_max > 0:
        out.update(min_eps_summary(c.min_eps[correct], c.min_eps_max))
    return out


def _missing(boot: Bootstrap) -> Quantity:
    return float("nan"), np.full(boot.n_boot, np.nan)


class Metrics:
    """A run's quantities (all seeds), computed on demand and cached. ``folder``: read the
    combinations of that folder only (the grid's tables read the grid's); ``attack``: those of
    a further attack on the long-tailed models (its label); ``sweep``: those of a sweep point (first seed). Every artifact a
    quantity is computed from is recorded in ``used`` (the tables' ``sources.json``)."""

    def __init__(
        self,
        outcomes: Outcomes,
        boot: Bootstrap,
        folder: str | None = None,
        attack: str = "",
        sweep: Point | None = None,
    ) -> None:
        self.outcomes, self.boot, self.folder, self.attack, self.sweep = outcomes, boot, folder, attack, sweep
        self.classes = outcomes.classes
        self.used: set[str] = set()
        self._cache: dict[tuple, Any] = {}

    def _memo(self, key: tuple, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _labels(self, evaluated: Scenario, gradient: Scenario, cls: str, which: str) -> list[np.ndarray] | None:
        found = self.outcomes.combinations(evaluated, gradient, cls, self.folder, self.attack, self.sweep)
        if found is None:
            return None
        self.used.update(e.source for e in found)
        return [getattr(e, which) for e in found]

    def _clean(self, model: Scenario) -> list[CleanEval] | None:
        found = self.outcomes.clean(model)
        self.used.update(e.source for e in found or [])
        return found

    def counts(self, s: Scenario) -> list[int] | None:
        """Training images per class of ``s``; None when its scenario artifact is missing."""
        found = self.outcomes.counts(s)
        if found is None:
            return None
        self.used.add(found[1])
        return found[0]

    def accuracy(
        self, evaluated: Scenario, gradient: Scenario, cls: str, which: str = "adv", label: str | None = None
    ) -> Quantity:
        """Percent of class ``cls``'s attacked images predicted as ``label`` (default: ``cls``,
        i.e. the accuracy) by ``evaluated``, ``clean`` before or ``adv`` after the attack with
        ``gradient``'s gradient; undefined (NaN) when a seed lacks the combination."""
        lab = self.classes.index(label or cls)

        def run() -> Quantity:
            labels = self._labels(evaluated, gradient, cls, which)
            if labels is None:
                return _missing(self.boot)
            # key = the images: the same class -> the same resample, whichever model or label
            return self.boot.mean([100.0 * (v == lab) for v in labels], key=("attacked", cls))

        return self._memo(("acc", evaluated, gradient, cls, which, lab), run)

    def relative_difference(self, evaluated: Scenario, gradient: Scenario, cls: str) -> Quantity:
        return relative_difference(
            self.accuracy(evaluated, gradient, cls, "clean"), self.accuracy(evaluated, gradient, cls, "adv")
        )

    def shares(self, evaluated: Scenario, gradient: Scenario, cls: str, which: str = "adv") -> Shares:
        """Percent of class ``cls``'s attacked images predicted as each label: ``(C,)``, ``(n_boot, C)``."""

        def run() -> Shares:
            labels = self._labels(evaluated, gradient, cls, which)
            if labels is None:
                return np.full(len(self.classes), np.nan), np.full((self.boot.n_boot, len(self.classes)), np.nan)
            return self.boot.shares(labels, ("attacked", cls), len(self.classes))

        return self._memo(("shares", evaluated, gradient, cls, which), run)

    def clean_class(self, model: Scenario, c: str) -> Quantity:
        """Clean accuracy (%) of ``model`` on the full test set of class ``c``."""
        i = self.classes.index(c)

        def run() -> Quantity:
            evals = self._clean(model)
            if evals is None:
                return _missing(self.boot)
            # its own key per model: the stored counts carry no image order, so two models'
            # clean accuracies must not be paired
            return self.boot.mean([e.correct(i) for e in evals], key=("test set", self.outcomes.name(model), c))

        return self._memo(("clean", model, c), run)

    def clean_overall(self, model: Scenario) -> Quantity:
        """Clean accuracy (%) of ``model`` on the full test set."""
        evals = self._clean(model)
        if evals is None:
            return _missing(self.boot)
        per = [self.clean_class(model, c) for c in self.classes]
        return mean_over_groups([p for p, _ in per], [r for _, r in per], weights=evals[0].n_per_class)

    def clean_accuracy(self, model: Scenario) -> float:
        """Overall clean test accuracy (%), mean over seeds, no interval (NaN unless every seed has it)."""
        evals = self._clean(model)
        return float("nan") if evals is None else float(np.mean([100 * e.accuracy for e in evals]))

    def mean_over(self, per: list[Quantity]) -> Quantity:
        """Mean of quantities (strict: undefined if any one is)."""
        return mean_over_groups([p for p, _ in per], [r for _, r in per])

    def estimate(self, q: Quantity) -> Estimate:
        return self.boot.interval(*q)

    def cols(self, name: str, q: Quantity) -> dict[str, float]:
        """``name`` and its interval ``name_lo``, ``name_hi`` (a table's columns)."""
        return self.estimate(q).columns(name)


class GridMetrics:
    """The paper grid's quantities, addressed by Table 1's class, model kind and gradient;
    each one is :class:`Metrics`' of the grid's models (``all``), on the grid's artifacts."""

    def __init__(self, res: GridResults, boot: Bootstrap) -> None:
        self.res, self.boot = res, boot
        self.all = Metrics(res.outcomes, boot, folder=GRID)

    def label(self, c: str) -> int:
        return self.res.classes.index(c)

    def _models(self, c: str, kind: Kind, grad: Gradient) -> tuple[Scenario, Scenario]:
        return grid_models(kind, grad, self.label(c))

    def accuracy(self, c: str, kind: Kind, grad: Gradient, which: str = "adv", label: str | None = None) -> Quantity:
        """Percent of class ``c``'s attacked images predicted as ``label`` (default: ``c``,
        i.e. the accuracy), ``clean`` before or ``adv`` after the attack."""
        return self.all.accuracy(*self._models(c, kind, grad), c, which, label)

    def relative_difference(self, c: str, kind: Kind, grad: Gradient = Gradient.SAME) -> Quantity:
        return self.all.relative_difference(*self._models(c, kind, grad), c)

    def shares(self, c: str, kind: Kind, grad: Gradient, which: str = "adv") -> Shares:
        return self.all.shares(*self._models(c, kind, grad), c, which)

    def clean_class(self, model: Scenario, c: str) -> Quantity:
        return self.all.clean_class(model, c)

    def clean_overall(self, model: Scenario) -> Quantity:
        return self.all.clean_overall(model)

    def mean_over_targets(self, fn: Callable[..., Quantity]) -> Quantity:
        """Mean over the studied classes of ``fn(c)`` (strict: undefined if any class is)."""
        return self.all.mean_over([fn(c) for c in self.res.targets])

    def estimate(self, q: Quantity) -> Estimate:
        return self.all.estimate(q)
