"""Tables of the attack and eps sweeps (``advimb sweep``; ``sweep/<attack>-eps<eps>/``): every
combination of every sweep point and a summary per attack, eps and Table 1 column (first seed),
every accuracy, success rate and share in percent (before 2026-12-07 ``sweep.csv`` held them as
shares from 0 to 1; ``advimb tables`` rewrites an older run's).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from advimb import artifacts
from advimb.layout import RunLayout
from advimb.results.metrics import combination_summary
from advimb.results.reader import TABLE1_COLUMNS, Outcomes
from advimb.scenario import Gradient, Kind


def _mean(xs: list[float]) -> float:
    """Mean of the defined values (the sweep's success rate is undefined for a class with no
    correctly classified image)."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]  # null in JSON, NaN in older artifacts
    return sum(xs) / len(xs) if xs else float("nan")


#: the shares of a combination's summary, written in percent like every other table's numbers
PERCENT = ("clean_accuracy", "adversarial_accuracy", "success_rate", "min_eps_flippable_share")


def _percent(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: 100 * v if k in PERCENT else v for k, v in summary.items()}


def sweep_rows(outcomes: Outcomes) -> list[dict[str, Any]]:
    """Every combination of every sweep point (``sweep/<attack>-eps<eps>/``), summarised by
    :func:`advimb.results.metrics.combination_summary` from its predictions."""
    rows = []
    name, classes = outcomes.name, outcomes.classes
    for (attack, eps), combos in outcomes.sweep_points().items():
        for c in combos:
            rows.append(
                {
                    "attack": attack,
                    "eps": eps,
                    "class": c.cls,
                    "model_kind": c.evaluated.kind,
                    "gradient": (Gradient.SAME if c.same_model else Gradient.BALANCED).value,
                    "evaluated_model": name(c.evaluated),
                    "gradient_model": name(c.gradient),
                    **_percent(combination_summary(c, classes.index(c.cls))),
                    "source": c.source.replace(".npz", ".json"),
                }
            )
    return rows


def sweep_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per attack, eps and Table 1 column, over target classes: mean accuracy under attack
    (= balanced accuracy, every class has the same number of attacked images), worst-class
    accuracy and its class, mean success rate on initially-correct images, mean minimal
    FGSM eps; and per attack and eps how many classes follow the paper's orderings."""
    out = []
    points = sorted({(r["attack"], r["eps"]) for r in rows})
    for attack, eps in points:
        pr = [r for r in rows if r["attack"] == attack and r["eps"] == eps]
        cell = {(r["class"], r["model_kind"], r["gradient"]): r for r in pr}
        classes = list(dict.fromkeys(r["class"] for r in pr))
        for col, kind, grad in TABLE1_COLUMNS:
            cs = [cell[(c, kind, grad)] for c in classes if (c, kind, grad) in cell]
            if not cs:
                continue
            worst = min(cs, key=lambda r: r["adversarial_accuracy"])
            out.append(
                {
                    "attack": attack,
                    "eps": eps,
                    "column": col,
                    "accuracy": _mean([r["adversarial_accuracy"] for r in cs]),
                    "worst_class_accuracy": worst["adversarial_accuracy"],
                    "worst_class": worst["class"],
                    "success_rate": _mean([r.get("success_rate", float("nan")) for r in cs]),
                    "min_eps_mean": _mean([r.get("min_eps_mean", float("nan")) for r in cs]),
                    "classes": len(cs),
                    **_orderings(cell, classes),
                }
            )
    return out


def _orderings(cell: dict, classes: list[str]) -> dict[str, int]:
    BAL, UNDER, OVER, SAME, TRANSFER = Kind.BALANCED, Kind.UNDER, Kind.OVER, Gradient.SAME, Gradient.BALANCED

    def acc(c, kind, grad):
        r = cell.get((c, kind, grad))
        return r["adversarial_accuracy"] if r else float("nan")

    return {
        "under_lt_balanced": sum(acc(c, UNDER, SAME) < acc(c, BAL, SAME) for c in classes),
        "balanced_lt_over": sum(acc(c, BAL, SAME) < acc(c, OVER, SAME) for c in classes),
        "transfer_weaker_under": sum(acc(c, UNDER, TRANSFER) > acc(c, UNDER, SAME) for c in classes),
        "transfer_weaker_over": sum(acc(c, OVER, TRANSFER) > acc(c, OVER, SAME) for c in classes),
    }


def build_sweep_tables(
    run_dir: Path, outcomes: Outcomes | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``tables/sweep.csv`` (every combination of every sweep point) and
    ``tables/sweep_summary.csv``; returns (combinations, summary), empty without a sweep.
    ``outcomes``: the run's, when the caller has read them."""
    rows = sweep_rows(outcomes or Outcomes.read(run_dir))
    if not rows:
        return [], []
    out = RunLayout(run_dir).tables
    cols = [
        "attack",
        "eps",
        "class",
        "model_kind",
        "gradient",
        "evaluated_model",
        "gradient_model",
        "n",
        "clean_accuracy",
        "adversarial_accuracy",
        "n_clean_correct",
        "success_rate",
        "min_eps_max",
        "min_eps_mean",
        "min_eps_median",
        "min_eps_flippable_share",
        "source",
    ]
    flat = [{k: r.get(k, "") for k in cols} for r in rows]
    artifacts.write_text(out / "sweep.csv", artifacts.csv_text(flat, cols))
    summary = sweep_summary(rows)
    artifacts.write_text(out / "sweep_summary.csv", artifacts.csv_text(summary, list(summary[0])))
    return rows, summary
