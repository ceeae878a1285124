"""Tables of the attack and eps sweeps (``advimb sweep``; ``sweep/<attack>-eps<eps>/``): every
combination of every sweep point and a summary per attack, eps and Table 1 column (first seed),
computed through :class:`~advimb.results.metrics.Metrics` like every other table: accuracies in
percent with their 95% intervals (the same bootstrap, so the sweep's FGSM at the main eps gives
Table 1's cells and intervals exactly). Before 2026-12-07 ``sweep.csv`` held its accuracies as
shares from 0 to 1 without intervals; ``advimb tables`` rewrites an older run's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from advimb import artifacts
from advimb.layout import RunLayout
from advimb.results.longtail import worst
from advimb.results.metrics import Metrics, combination_summary
from advimb.results.reader import TABLE1_COLUMNS, Outcomes, Point, grid_models
from advimb.results.stats import N_BOOT, Bootstrap
from advimb.scenario import Gradient, Kind

#: the columns of ``sweep.csv``
COLUMNS = [
    "attack",
    "eps",
    "class",
    "model_kind",
    "gradient",
    "evaluated_model",
    "gradient_model",
    "n",
    "clean_accuracy",
    "clean_accuracy_lo",
    "clean_accuracy_hi",
    "adversarial_accuracy",
    "adversarial_accuracy_lo",
    "adversarial_accuracy_hi",
    "n_clean_correct",
    "success_rate",
    "min_eps_max",
    "min_eps_mean",
    "min_eps_median",
    "min_eps_flippable_share",
    "source",
]


def _mean(xs: list[float]) -> float:
    """Mean of the defined values (the sweep's success rate is undefined for a class with no
    correctly classified image)."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]  # null in JSON, NaN in older artifacts
    return sum(xs) / len(xs) if xs else float("nan")


def sweep_rows(outcomes: Outcomes, metrics: dict[Point, Metrics]) -> list[dict[str, Any]]:
    """Every combination of every sweep point (``sweep/<attack>-eps<eps>/``): its accuracies
    before and after the attack with intervals (:class:`Metrics`), and its success rate and
    minimal FGSM eps on the images correct before (:func:`combination_summary`), in percent."""
    rows = []
    name, classes = outcomes.name, outcomes.classes
    for point, combos in outcomes.sweep_points().items():
        m = metrics[point]
        for c in combos:
            own = combination_summary(c, classes.index(c.cls))
            minimal = {k: v for k, v in own.items() if k.startswith("min_eps")}
            if "min_eps_flippable_share" in minimal:  # a share, in percent like every other
                minimal["min_eps_flippable_share"] *= 100
            rows.append(
                {
                    "attack": point[0],
                    "eps": point[1],
                    "class": c.cls,
                    "model_kind": c.evaluated.kind,
                    "gradient": (Gradient.SAME if c.same_model else Gradient.BALANCED).value,
                    "evaluated_model": name(c.evaluated),
                    "gradient_model": name(c.gradient),
                    "n": own["n"],
                    **m.cols("clean_accuracy", m.accuracy(c.evaluated, c.gradient, c.cls, "clean")),
                    **m.cols("adversarial_accuracy", m.accuracy(c.evaluated, c.gradient, c.cls)),
                    "n_clean_correct": own["n_clean_correct"],
                    "success_rate": 100 * own["success_rate"],
                    **minimal,
                    "source": c.source.replace(".npz", ".json"),
                }
            )
    return rows


def sweep_summary(
    outcomes: Outcomes, rows: list[dict[str, Any]], metrics: dict[Point, Metrics]
) -> list[dict[str, Any]]:
    """Per attack, eps and Table 1 column, over the classes it attacked: the mean accuracy under
    attack (= balanced accuracy: every class has the same number of attacked images) and the
    worst class's (the bootstrap of the minimum), each with its interval; the mean success rate
    on initially-correct images and minimal FGSM eps; and how many classes follow the paper's
    orderings."""
    out = []
    points = sorted({(r["attack"], r["eps"]) for r in rows})
    for point in points:
        m = metrics[point]
        pr = [r for r in rows if (r["attack"], r["eps"]) == point]
        cell = {(r["class"], r["model_kind"], r["gradient"]): r for r in pr}
        classes = list(dict.fromkeys(r["class"] for r in pr))
        for col, kind, grad in TABLE1_COLUMNS:
            present = [c for c in classes if (c, kind, grad.value) in cell]
            if not present:
                continue
            per = [m.accuracy(*grid_models(kind, grad, outcomes.classes.index(c)), c) for c in present]
            low, at = worst(per)
            out.append(
                {
                    "attack": point[0],
                    "eps": point[1],
                    "column": col,
                    **m.cols("accuracy", m.mean_over(per)),
                    **m.cols("worst_class_accuracy", low),
                    "worst_class": present[at] if at >= 0 else "",
                    "success_rate": _mean([cell[(c, kind, grad.value)]["success_rate"] for c in present]),
                    "min_eps_mean": _mean(
                        [cell[(c, kind, grad.value)].get("min_eps_mean", float("nan")) for c in present]
                    ),
                    "classes": len(present),
                    **_orderings(cell, classes),
                }
            )
    return out


def _orderings(cell: dict, classes: list[str]) -> dict[str, int]:
    BAL, UNDER, OVER, SAME, TRANSFER = Kind.BALANCED, Kind.UNDER, Kind.OVER, Gradient.SAME, Gradient.BALANCED

    def acc(c, kind, grad):
        r = cell.get((c, kind, grad.value))
        return r["adversarial_accuracy"] if r else float("nan")

    return {
        "under_lt_balanced": sum(acc(c, UNDER, SAME) < acc(c, BAL, SAME) for c in classes),
        "balanced_lt_over": sum(acc(c, BAL, SAME) < acc(c, OVER, SAME) for c in classes),
        "transfer_weaker_under": sum(acc(c, UNDER, TRANSFER) > acc(c, UNDER, SAME) for c in classes),
        "transfer_weaker_over": sum(acc(c, OVER, TRANSFER) > acc(c, OVER, SAME) for c in classes),
    }


def build_sweep_tables(
    run_dir: Path, outcomes: Outcomes | None = None, n_boot: int = N_BOOT
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``tables/sweep.csv`` (every combination of every sweep point) and
    ``tables/sweep_summary.csv``; returns (combinations, summary), empty without a sweep.
    ``outcomes``: the run's, when the caller has read them."""
    outcomes = outcomes or Outcomes.read(run_dir)
    boot = Bootstrap(n_boot=n_boot, seed=0)
    # one Metrics per point, shared by the rows and the summary (its quantities cached once)
    metrics = {point: Metrics(outcomes, boot, sweep=point) for point in outcomes.sweep_points()}
    rows = sweep_rows(outcomes, metrics)
    if not rows:
        return [], []
    out = RunLayout(run_dir).tables
    flat = [{k: r.get(k, "") for k in COLUMNS} for r in rows]
    artifacts.write_text(out / "sweep.csv", artifacts.csv_text(flat, COLUMNS))
    summary = sweep_summary(outcomes, rows, metrics)
    artifacts.write_text(out / "sweep_summary.csv", artifacts.csv_text(summary, list(summary[0])))
    return rows, summary
