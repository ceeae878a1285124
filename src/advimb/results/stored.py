"""The stored artifacts a report shows beside the results (:class:`~advimb.results.reader.Outcomes`
reads the results themselves): a model's training history (``models/<slug>/history.csv``) and
the example images of the grid's attacks with its gradient (the attack ``.npz``'s ``example_*``
arrays). The report opens no artifact itself.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from advimb.layout import GRID, RunLayout
from advimb.scenario import Scenario


def read_history(run_dir: Path, model: Scenario, classes: tuple[str, ...]) -> tuple[list[dict[str, float]], str]:
    """``model``'s history.csv rows (every column a float; [] when it is missing) and its path
    relative to ``run_dir``."""
    path = RunLayout(run_dir).model(model.slug(classes)) / "history.csv"
    rows: list[dict[str, float]] = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return rows, str(path.relative_to(run_dir))


class Examples(NamedTuple):
    """The stored examples of one class's images attacked with a model's gradient: the clean
    and perturbed images, that model's probabilities before and after, their test indices."""

    clean: np.ndarray
    adversarial: np.ndarray
    prob_clean: np.ndarray
    prob_adv: np.ndarray
    test_indices: np.ndarray
    source: str


def read_examples(run_dir: Path, model: Scenario, cls: str, classes: tuple[str, ...]) -> Examples | None:
    """The stored examples of class ``cls`` attacked with ``model``'s gradient and classified by
    it (the grid's artifact); None when the artifact or its examples are missing."""
    slug = model.slug(classes)
    path = RunLayout(run_dir).attack(GRID, slug, cls, "npz")
    if not path.exists():
        return None
    with np.load(path) as z:
        if "example_clean" not in z or len(z["example_clean"]) == 0:
            return None
        a: dict[str, Any] = {
            k: z[k]
            for k in (
                "example_clean",
                "example_adversarial",
                f"example_prob_clean__{slug}",
                f"example_prob_adv__{slug}",
                "test_indices",
            )
        }
    return Examples(
        a["example_clean"],
        a["example_adversarial"],
        a[f"example_prob_clean__{slug}"],
        a[f"example_prob_adv__{slug}"],
        a["test_indices"],
        str(path.relative_to(run_dir)),
    )
