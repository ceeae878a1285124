"""The pair (a, b) of classes that Fig. 6 and claim C4 read: the paper's (cat, dog), the pair a
run's balanced model confuses most, or one the user names with ``--pair``."""

from __future__ import annotations

import numpy as np

from advimb.errors import UserError


def default_pair(
    classes: tuple[str, ...], targets: list[str] | None = None, confusion: np.ndarray | None = None
) -> tuple[str, str]:
    """The pair (a, b) for Fig. 6 and C4, which read the under:a model, so a is a studied
    class (``targets``, default: all): the paper's (cat, dog) when cat is studied and the
    dataset has a dog (dog need not be studied); else the studied class a and the class b
    that the balanced model takes a for most often (row-normalised clean confusion, largest
    over every studied a and every other class b)."""
    targets = list(targets or classes)
    if "cat" in targets and "dog" in classes:
        return "cat", "dog"
    if confusion is None:
        return targets[0], (targets[1] if len(targets) > 1 else next(c for c in classes if c != targets[0]))
    cm = np.asarray(confusion, dtype=np.float64)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    np.fill_diagonal(cm, -1)
    rows = [classes.index(c) for c in targets]
    sub = cm[rows]
    i, j = np.unravel_index(np.argmax(sub), sub.shape)
    return classes[rows[i]], classes[j]


def parse_pair(pair: str | tuple[str, str], classes: tuple[str, ...], targets: list[str]) -> tuple[str, str]:
    """``--pair A,B`` checked: two different classes of the dataset, A a studied class (C4
    and Fig. 6 use the model trained with A under-sampled). Raises :class:`UserError`."""
    parts = [p.strip() for p in (pair.split(",") if isinstance(pair, str) else pair)]
    if len(parts) != 2:
        raise UserError(f"--pair {pair!r} must name two classes, e.g. --pair cat,dog")
    a, b = parts
    for c in (a, b):
        if c not in classes:
            raise UserError(f"unknown class {c!r} in --pair; choose from {', '.join(classes)}")
    if a == b:
        raise UserError("--pair needs two different classes, e.g. --pair cat,dog")
    if a not in targets:
        raise UserError(
            f"--pair {a},{b}: {a!r} is not a studied class (imbalance.classes), so there is no "
            f"under:{a} model; put one of {', '.join(targets)} first"
        )
    return a, b
