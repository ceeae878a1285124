"""Imbalanced training scenarios (paper Sec. 3.1) and their deterministic samplers.

Samplers follow imbalanced-learn's contract: deterministic for a seed, they return the
chosen indices (sorted, into the training arrays) so every training set can be stored,
rebuilt and audited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advimb.config import ImbalanceConfig, derive_seed
from advimb.errors import UserError

KINDS = ("balanced", "under", "over")


@dataclass(frozen=True, order=True)
class Scenario:
    """``balanced``, ``under`` or ``over`` with a target class index (None for balanced)."""

    kind: str
    target: int | None = None

    def name(self, classes: tuple[str, ...]) -> str:
        """Canonical name, e.g. ``under:cat``."""
        return self.kind if self.target is None else f"{self.kind}:{classes[self.target]}"

    def slug(self, classes: tuple[str, ...]) -> str:
        """File-system-safe name, e.g. ``under-cat``."""
        return self.name(classes).replace(":", "-")


def parse_class(text: str | int, classes: tuple[str, ...]) -> int:
    """A class given by name (``cat``) or index (``3``) -> index."""
    s = str(text).strip()
    if s in classes:
        return classes.index(s)
    if s.lstrip("-").isdigit():
        i = int(s)
        if 0 <= i < len(classes):
            return i
        raise UserError(f"class index {i} is out of range: this dataset has {len(classes)} classes (0-{len(classes) - 1})")
    raise UserError(f"unknown class {s!r}; classes are: {', '.join(classes)}")


def parse_scenario(text: str, classes: tuple[str, ...]) -> Scenario:
    """``balanced``, ``under:<class>`` or ``over:<class>`` (class by name or index)."""
    kind, _, cls = text.strip().partition(":")
    if kind not in KINDS:
        raise UserError(f"unknown scenario {text!r}; use balanced, under:<class> or over:<class>")
    if kind == "balanced":
        if cls:
            raise UserError(f"scenario {text!r}: balanced takes no class")
        return Scenario("balanced")
    if not cls:
        raise UserError(f"scenario {text!r} needs a class, e.g. {kind}:cat or {kind}:3")
    return Scenario(kind, parse_class(cls, classes))


def target_classes(cfg: ImbalanceConfig, classes: tuple[str, ...]) -> list[int]:
    """The classes the grid targets: ``cfg.classes`` (names or indices) or all."""
    if not cfg.classes:
        return list(range(len(classes)))
    return sorted({parse_class(c, classes) for c in cfg.classes})


def paper_scenarios(cfg: ImbalanceConfig, classes: tuple[str, ...]) -> list[Scenario]:
    """balanced + under:c + over:c for every target class c (21 for CIFAR-10)."""
    targets = target_classes(cfg, classes)
    return ([Scenario("balanced")] + [Scenario("under", c) for c in targets]
            + [Scenario("over", c) for c in targets])


def class_counts(s: Scenario, num_classes: int, cfg: ImbalanceConfig) -> list[int]:
    """Images per class in scenario ``s`` (majority/minority counts, paper Sec. 3.1)."""
    hi, lo = cfg.majority_count, cfg.minority_count
    if s.kind == "balanced":
        return [hi] * num_classes
    if s.kind == "under":
        return [lo if c == s.target else hi for c in range(num_classes)]
    return [hi if c == s.target else lo for c in range(num_classes)]


def select_indices(
    labels: np.ndarray, counts: list[int], *, selection: str, seed: int,
    classes: tuple[str, ...], scenario_name: str = "",
) -> np.ndarray:
    """Sorted indices into ``labels`` keeping ``counts[c]`` images of each class c.

    ``random``: a seeded permutation per class (seed derived from ``seed`` and the class
    only, so subsets are nested across scenarios: the 1,000 cats of ``under:cat`` are
    among the 5,000 of ``balanced``). ``first``: the authors' code, which drops the first
    images of the class in dataset order, i.e. keeps the last ``counts[c]``.
    """
    chosen = []
    for c, n in enumerate(counts):
        members = np.flatnonzero(labels == c)
        if len(members) < n:
            raise UserError(
                f"class {classes[c]!r} has {len(members)} training images but scenario "
                f"{scenario_name or '?'} asks for {n}; lower imbalance.majority_count / "
                "imbalance.minority_count"
            )
        if selection == "first":
            chosen.append(members[len(members) - n:])
        else:
            rng = np.random.default_rng(derive_seed(seed, "select", c))
            chosen.append(np.sort(rng.permutation(members)[:n]))
    return np.sort(np.concatenate(chosen))


def stratified_split(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, validation), ``fraction`` of every class held out
    (rounded, at least one image of a class with two or more). Both sorted."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels[indices]):
        members = indices[labels[indices] == c]
        n_val = int(round(fraction * len(members)))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        perm = rng.permutation(members)
        val.append(perm[:n_val])
        train.append(perm[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
