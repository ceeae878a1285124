"""Imbalanced training scenarios (paper Sec. 3.1) and their deterministic samplers.

Samplers follow imbalanced-learn's contract: deterministic for a seed, they return the
chosen indices (sorted, into the training arrays) so every training set can be stored,
rebuilt and audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from advimb.config.sections import ImbalanceConfig
from advimb.config.seeds import derive_seed
from advimb.errors import UserError
from advimb.registry import Registry
from advimb.scenario import (  # noqa: F401 - the identity's names, importable from here as before
    BALANCED,
    KINDS,
    Kind,
    Scenario,
    parse_class,
    parse_scenario,
)


def target_classes(cfg: ImbalanceConfig, classes: tuple[str, ...]) -> list[int]:
    """The classes the grid targets: ``cfg.classes`` (names or indices) or all."""
    if not cfg.classes:
        return list(range(len(classes)))
    return sorted({parse_class(c, classes) for c in cfg.classes})


def selection_of(s: Scenario, cfg: ImbalanceConfig) -> str:
    """How ``s``'s images are chosen: its long-tailed profile's own selection where the profile
    declares one (``ldam``: LDAM-DRW's draws), else ``cfg.selection``."""
    own = PROFILES.get(s.profile).selection if s.kind == Kind.LONGTAIL else ""
    return own or cfg.selection


def paper_scenarios(cfg: ImbalanceConfig, classes: tuple[str, ...]) -> list[Scenario]:
    """balanced + under:c + over:c for every target class c (21 for CIFAR-10)."""
    targets = target_classes(cfg, classes)
    return (
        [Scenario(Kind.BALANCED)]
        + [Scenario(Kind.UNDER, c) for c in targets]
        + [Scenario(Kind.OVER, c) for c in targets]
    )


def class_counts(s: Scenario, num_classes: int, cfg: ImbalanceConfig) -> list[int]:
    """Images per class in scenario ``s`` (majority/minority counts, paper Sec. 3.1; a
    ``count`` overrides the target's; long-tailed profiles from ``majority_count``)."""
    hi, lo = cfg.majority_count, cfg.minority_count
    if s.kind == "longtail":
        return long_tail_counts(s.profile, s.rho, cfg.long_tail_max or hi, num_classes)
    if s.kind == "counts":
        return custom_counts(s.label, num_classes, cfg)
    if s.kind == "balanced":
        return [hi] * num_classes
    if s.kind == "under":
        return [(s.count or lo) if c == s.target else hi for c in range(num_classes)]
    return [(s.count or hi) if c == s.target else lo for c in range(num_classes)]


def custom_counts(name: str, num_classes: int, cfg: ImbalanceConfig) -> list[int]:
    """The counts of ``[[imbalance.scenarios]]`` ``name``: given, or from its factory; one
    non-negative integer per class (a one-line error otherwise)."""
    import importlib
    import operator

    spec = next((c for c in cfg.scenarios if c.name == name), None)
    if spec is None:
        raise UserError(f"scenario counts:{name} is not in imbalance.scenarios")
    counts = list(spec.counts)
    if spec.factory:
        module, _, attr = spec.factory.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
            counts = list(fn(num_classes))
        except Exception as e:  # noqa: BLE001 - the user's factory may raise anything: one line, exit 2
            raise UserError(
                f"imbalance.scenarios ({name}).factory {spec.factory!r} failed "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
    try:  # integers of any kind (numpy's too), not booleans
        counts = [] if any(isinstance(c, bool) for c in counts) else [operator.index(c) for c in counts]
    except TypeError:
        counts = []
    if len(counts) != num_classes or not all(c >= 0 for c in counts) or not any(counts):
        raise UserError(
            f"imbalance.scenarios ({name}): expected {num_classes} non-negative integer counts "
            f"(one per class, in label order, not all 0), got {counts!r}"
        )
    return counts


class Profile(NamedTuple):
    """A long-tailed profile: its counts per class ``counts(rho, n_max, num_classes)`` and the
    selection that draws its images, "" for the study's ``imbalance.selection``."""

    counts: Callable[[float, int, int], list[int]]
    selection: str = ""


#: the long-tailed profiles of ``experiments.long_tail`` (``<profile>:<rho>``)
PROFILES: Registry[Profile] = Registry(
    "config experiments.long_tail: unknown profile {name!r}; choose one of: {names} (as <profile>:<rho>, e.g. exp:10)",
    sort=False,
)


def register_profile(name: str, selection: str = ""):
    """Register a long-tailed profile ``fn(rho, n_max, num_classes) -> counts per class``
    (classes in label order) as ``experiments.long_tail = ["<name>:<rho>"]``; names are letters.
    ``selection``: the selection that draws its images (one of :func:`select_indices`'), ""
    for the study's ``imbalance.selection``."""
    if not re.fullmatch(r"[A-Za-z_]+", name):
        raise ValueError(f"a profile name is letters only, got {name!r}")  # a bug

    def deco(fn: Callable[[float, int, int], list[int]]) -> Callable[[float, int, int], list[int]]:
        PROFILES.add(name, Profile(fn, selection))
        return fn

    return deco


def list_profiles() -> list[str]:
    return PROFILES.names()


def check_profile(name: str) -> None:
    PROFILES.check(name)


@register_profile("exp")
def exp_profile(rho: float, n_max: int, c: int) -> list[int]:
    """Exponential (Cui et al. 2019): n_i = floor(n_max * rho^(-i/(C-1)))."""
    return [max(1, int(n_max * rho ** (-i / max(c - 1, 1)))) for i in range(c)]


@register_profile("step")
def step_profile(rho: float, n_max: int, c: int) -> list[int]:
    """Step (Cao et al. 2019): the first ceil(C/2) classes keep n_max, the other floor(C/2) get
    floor(n_max / rho)."""
    return [n_max if i < c - c // 2 else max(1, int(n_max / rho)) for i in range(c)]


@register_profile("ldam", selection="ldam")
def ldam_profile(rho: float, n_max: int, c: int) -> list[int]:
    """CIFAR-10-LT / CIFAR-100-LT as LDAM-DRW builds them (Cao et al. 2019,
    imbalance_cifar.py in their repository): class i keeps int(n_max * (1/rho)^(i/(C-1))); its images are
    chosen by :func:`ldam_indices`."""
    return [int(n_max * (1 / rho) ** (i / (c - 1.0))) for i in range(c)]


#: LDAM-DRW's seed of numpy's global generator before it draws the split (``rand_number``)
LDAM_SEED = 0


def ldam_indices(labels: np.ndarray, counts: list[int], seed: int = LDAM_SEED) -> np.ndarray:
    """The images LDAM-DRW keeps, sorted: numpy's legacy generator seeded once with ``seed``,
    then for every class in label order its indices (dataset order) shuffled and the first
    ``counts[c]`` kept - the very draws of ``np.random.seed(0)`` and ``np.random.shuffle``."""
    rng = np.random.RandomState(seed)
    chosen = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        rng.shuffle(idx)
        chosen.append(idx[:n])
    return np.sort(np.concatenate(chosen))


def long_tail_counts(profile: str, rho: float, n_max: int, num_classes: int) -> list[int]:
    """Counts per class of a registered long-tailed profile, classes in label order."""
    return PROFILES.get(profile).counts(rho, n_max, num_classes)


def check_counts(labels: np.ndarray, counts: list[int], classes: tuple[str, ...], scenario_name: str = "") -> None:
    """Raise a :class:`UserError` unless every class has at least one and at most as many
    training images as ``counts`` asks for (no selection made: a preflight check)."""
    have = np.bincount(labels, minlength=len(counts))
    for c, n in enumerate(counts):
        if n < 1:
            raise UserError(
                f"scenario {scenario_name or '?'} leaves class {classes[c]!r} with no training images; "
                "every class needs at least one (a model cannot be asked about a class it never saw)"
            )
        if have[c] < n:
            raise UserError(
                f"class {classes[c]!r} has {have[c]} training images but scenario "
                f"{scenario_name or '?'} asks for {n}; lower imbalance.majority_count / "
                "imbalance.minority_count"
            )


def select_indices(
    labels: np.ndarray,
    counts: list[int],
    *,
    selection: str,
    seed: int,
    classes: tuple[str, ...],
    scenario_name: str = "",
) -> np.ndarray:
    """Sorted indices into ``labels`` keeping ``counts[c]`` images of each class c.

    ``random``: a seeded permutation per class (seed derived from ``seed`` and the class
    only, so subsets are nested across scenarios: the 1,000 cats of ``under:cat`` are
    among the 5,000 of ``balanced``). ``first``: the authors' code, which drops the first
    images of the class in dataset order, i.e. keeps the last ``counts[c]``. ``ldam``:
    LDAM-DRW's draws (:func:`ldam_indices`), the long-tailed CIFAR splits' own.
    """
    check_counts(labels, counts, classes, scenario_name)
    if selection == "ldam":
        return ldam_indices(labels, counts)
    chosen = []
    for c, n in enumerate(counts):
        members = np.flatnonzero(labels == c)
        if selection == "first":
            chosen.append(members[len(members) - n :])
        else:
            rng = np.random.default_rng(derive_seed(seed, "select", c))
            chosen.append(np.sort(rng.permutation(members)[:n]))
    return np.sort(np.concatenate(chosen))


def held_out(n: int, fraction: float) -> int:
    """Validation images of a class of ``n``: ``fraction`` of them, rounded, at least one of
    a class with two or more, never all."""
    return min(max(round(fraction * n), 1), n - 1) if n >= 2 else 0


def balanced_subset(val: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """The class-balanced part of held-out indices ``val``: from every class as many as the
    smallest class has, chosen by a seeded permutation per class; sorted. Where every class
    already has as many, that is ``val`` itself."""
    per = np.bincount(labels[val])
    n = int(per[per > 0].min()) if len(val) else 0
    if np.all(per[per > 0] == n):
        return np.sort(val)
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(val[labels[val] == c])[:n] for c in np.unique(labels[val])]))


def validation_is_split(counts: list[int], validation: str, fraction: float) -> bool:
    """Does ``validation`` hold out exactly what ``split`` does for a scenario with these
    counts (``balanced`` where every class is held out alike)?"""
    held = {held_out(n, fraction) for n in counts}
    return validation == "split" or (validation == "balanced" and len(held) == 1)


def stratified_split(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (train, validation), ``fraction`` of every class held out
    (rounded, at least one image of a class with two or more). Both sorted."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels[indices]):
        members = indices[labels[indices] == c]
        n_val = held_out(len(members), fraction)
        perm = rng.permutation(members)
        val.append(perm[:n_val])
        train.append(perm[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
