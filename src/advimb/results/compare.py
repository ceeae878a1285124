"""A run beside another run of the paper's grid (a later protocol beside the published one,
say), quantity by quantity on the classes the later run studies, with the paper's number
where it prints one: the balanced model's clean accuracy, each class's clean accuracy in its
balanced, under- and over-sampled models, and its five Table 1 cells. Both runs attack every
test image of a class in the same order, so their per-image outcomes are paired: a
difference's interval resamples the same images for both (one :class:`Bootstrap` key). The
clean accuracy over the whole test set is stored as confusion counts (no image order), so its
difference resamples the two runs independently.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from advimb.results.metrics import GridMetrics, difference
from advimb.results.reader import TABLE1_COLUMNS, GridResults, load_grid
from advimb.results.reference import reference
from advimb.results.stats import N_BOOT, Bootstrap, Estimate
from advimb.scenario import BALANCED, Gradient, Kind


class Beside(NamedTuple):
    """One quantity of two runs: ``base``'s and ``run``'s estimates, ``run`` minus ``base``
    (points), and the paper's value in words ("-" where it gives none)."""

    quantity: str
    base: Estimate
    run: Estimate
    difference: Estimate
    paper: str


def compare_runs(run: str | Path, base: str | Path, n_boot: int = N_BOOT) -> tuple[list[Beside], GridResults]:
    """``run`` beside ``base`` (both run folders of the paper's grid), on ``run``'s classes;
    also returns ``run``'s grid (its studied classes). Intervals: 95% percentile bootstrap."""
    new, old = load_grid(run), load_grid(base)
    boot = Bootstrap(n_boot)
    mn, mo = GridMetrics(new, boot), GridMetrics(old, boot)
    ref = reference()
    paper = {c: dict(zip(ref["table1_columns"], v)) for c, v in ref["table1_percent"].items()}
    # the whole test set: independent resamples (the second run's bootstrap another seed)
    qn, qo = GridMetrics(new, Bootstrap(n_boot, seed=1)).clean_overall(BALANCED), mo.clean_overall(BALANCED)
    rows = [
        Beside(
            f"balanced model, clean test accuracy ({int(new.clean(BALANCED)[0].n_per_class.sum()):,} images)",
            boot.interval(*qo),
            boot.interval(*qn),
            boot.interval(qn[0] - qo[0], qn[1] - qo[1]),
            f"{ref['text']['balanced_clean_accuracy_thesis_percent']} (the authors' code)",
        )
    ]
    n = f"{new.n_attacked:,} images"
    for c in new.targets:
        # the balanced model's: the same protocol in both runs, so its difference is what
        # retraining elsewhere (device, precision, rounding) does by itself
        qn, qo = (
            mn.accuracy(c, Kind.BALANCED, Gradient.SAME, "clean"),
            mo.accuracy(c, Kind.BALANCED, Gradient.SAME, "clean"),
        )
        rows.append(
            Beside(
                f"balanced, clean accuracy of {c} ({n})",
                mo.estimate(qo),
                mn.estimate(qn),
                boot.interval(*difference(qn, qo)),
                "-",
            )
        )
        for kind in (Kind.UNDER, Kind.OVER):
            qn = mn.accuracy(c, kind, Gradient.BALANCED, "clean")
            qo = mo.accuracy(c, kind, Gradient.BALANCED, "clean")
            rows.append(
                Beside(
                    f"{kind}:{c}, clean accuracy of {c} ({n})",
                    mo.estimate(qo),
                    mn.estimate(qn),
                    boot.interval(*difference(qn, qo)),
                    "-",
                )
            )
        for col, kind, grad in TABLE1_COLUMNS:
            qn, qo = mn.accuracy(c, kind, grad), mo.accuracy(c, kind, grad)
            rows.append(
                Beside(
                    f"Table 1, {c}, {col.replace('_', ' ').replace('model ', 'model: ')}",
                    mo.estimate(qo),
                    mn.estimate(qn),
                    boot.interval(*difference(qn, qo)),
                    f"{paper[c][col]:g}",
                )
            )
    return rows, new
