"""Defences that re-weigh the classes: class weights, re-sampling and the logit adjustment
(balanced softmax). Each changes only the cross-entropy or the epoch's order, so its models
train in the study's one stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from advimb.training.defences.base import Defence, Regime


def log_prior(y: torch.Tensor, num_classes: int) -> tuple[float, ...]:
    """log(n_c / N) for every class (an absent class counts as one image, so the offset stays
    finite)."""
    n = torch.bincount(y.cpu(), minlength=num_classes).double().clamp(min=1)
    return tuple(float(v) for v in (n / len(y)).log().tolist())


def balanced_weights(y: torch.Tensor, num_classes: int) -> tuple[float, ...]:
    """N / (C * n_c) for every class c present (scikit-learn's ``balanced``), 0 if absent."""
    n = torch.bincount(y.cpu(), minlength=num_classes).double()
    present = int((n > 0).sum())
    return tuple(float(len(y) / (present * v)) if v > 0 else 0.0 for v in n.tolist())


@dataclass(frozen=True)
class ClassWeight(Defence):
    """Each image's loss weighted N / (C n_c)."""

    declares: ClassVar[frozenset[str]] = frozenset({"class_weight"})

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(class_weight=balanced_weights(y_train, num_classes))


@dataclass(frozen=True)
class Resample(Defence):
    """Smaller classes re-drawn with replacement up to the largest, every epoch."""

    declares: ClassVar[frozenset[str]] = frozenset({"resample"})

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(resample=True)


@dataclass(frozen=True)
class LogitAdjust(Defence):
    """The log class prior added to the training logits."""

    declares: ClassVar[frozenset[str]] = frozenset({"logit_adjust"})

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(logit_adjust=log_prior(y_train, num_classes))
