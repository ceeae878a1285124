"""How a model is trained beyond the optimiser: the defences of ``experiments.defences`` as a
registry of objects (class weights, re-sampling, logit adjustment, FGSM and PGD adversarial
training; each declares what defines it for a job's key and builds its own :class:`Regime`). The paper's plain training is
``Regime()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advimb.attacks.core import fgsm, pgd
from advimb.registry import Registry


@dataclass(frozen=True)
class Regime:
    """How a model is trained beyond the optimiser (``experiments.defences``); the default
    is the paper's plain training.

    ``class_weight``: per-class loss weights (Keras ``class_weight`` semantics: each
    image's loss times its class's weight, averaged over the batch). ``logit_adjust``: per-class
    offsets added to the logits in the training loss only (the logit-adjusted loss of Menon
    et al. 2021 with tau = 1: log of the class's share of the training set, which is the
    balanced softmax of Ren et al. 2020); predictions use the raw logits. ``resample``: every
    epoch, each class with fewer images than the largest is topped up to it by drawing its
    images again with replacement (fresh draws each epoch). ``adversarial``: ``fgsm`` or
    ``pgd``: each batch is replaced by adversarial images crafted against the current
    model (eval mode) with eps ``adv_eps`` (PGD: ``adv_steps`` steps of 2.5 eps / steps from
    a random start), only for images whose label is in ``adv_classes`` when that is given.
    """

    class_weight: tuple[float, ...] = ()
    logit_adjust: tuple[float, ...] = ()
    resample: bool = False
    adversarial: str = ""
    adv_eps: float = 0.01
    adv_steps: int = 7
    adv_classes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Defence:
    """A training-time defence: what defines it for a model's job key (:meth:`advimb.training.regimes.Defence.spec`) and the
    :class:`Regime` it trains that model with (:meth:`advimb.training.regimes.Defence.regime`, each kind of defence its own).
    ``adversarial``: the attack that crafts its training images (``fgsm``, ``pgd``; it then
    also defends the balanced model), "" for none."""

    name: str
    description: str = ""
    adversarial: str = ""

    @property
    def stackable(self) -> bool:
        """Can its models train in the study's one stack? Weights and re-sampling change
        only the loss and the epoch's order; adversarial training crafts each batch against
        its own model, so it trains one by one."""
        return not self.adversarial

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """What defines this defence for a model (part of its job key); the experiments'
        adversarial-training settings matter only to adversarial training."""
        return {"name": self.name}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        """The training regime of a model with this defence (its ``spec`` from :meth:`advimb.training.regimes.Defence.spec`)."""
        raise NotImplementedError(f"defence {self.name!r} builds no regime")  # a bug: every kind overrides it


@dataclass(frozen=True)
class ClassWeight(Defence):
    """Each image's loss weighted N / (C n_c)."""

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(class_weight=balanced_weights(y_train, num_classes))


@dataclass(frozen=True)
class Resample(Defence):
    """Smaller classes re-drawn with replacement up to the largest, every epoch."""

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(resample=True)


@dataclass(frozen=True)
class LogitAdjust(Defence):
    """The log class prior added to the training logits."""

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(logit_adjust=log_prior(y_train, num_classes))


@dataclass(frozen=True)
class AdversarialTraining(Defence):
    """Training on images crafted by ``adversarial`` against the current model."""

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """The name, eps and scope (only a model with an under-sampled class, ``targeted``,
        can restrict it to the minority class), and PGD's steps."""
        out = {"name": self.name, "eps": adv_eps, "scope": adv_scope if targeted else "all"}
        return {**out, "steps": adv_steps} if self.adversarial == "pgd" else out

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        scope = (target,) if spec["scope"] == "minority" and target is not None else ()
        return Regime(
            adversarial=self.adversarial, adv_eps=spec["eps"], adv_steps=spec.get("steps", 7), adv_classes=scope
        )


#: the defences of ``experiments.defences``, in their canonical order
DEFENCES: Registry[Defence] = Registry("config experiments.defences: {name!r} is not one of {names}", sort=False)


def register_defence(defence: Defence) -> Defence:
    return DEFENCES.add(defence.name, defence)


def list_defences() -> list[str]:
    """The registered defences, in their canonical order."""
    return DEFENCES.names()


def get_defence(name: str) -> Defence:
    return DEFENCES.get(name)


for _d in (
    ClassWeight("class_weight", "each image's loss weighted N / (C n_c) (Keras class_weight)"),
    Resample("resample", "smaller classes re-drawn with replacement up to the largest, flipped"),
    LogitAdjust(
        "logit_adjust",
        "training logits + log class prior (logit-adjusted loss, Menon et al. 2021, tau = 1; = balanced softmax, "
        "Ren et al. 2020)",
    ),
    AdversarialTraining("fgsm_at", "trained on FGSM images crafted against the current model", "fgsm"),
    AdversarialTraining("pgd_at", "trained on PGD images crafted against the current model", "pgd"),
):
    register_defence(_d)


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


def epoch_size(y: torch.Tensor, regime: Regime) -> int:
    """How many images :func:`epoch_order` gives per epoch: ``n``, or with ``resample`` the
    largest class's count times the number of classes present."""
    if not regime.resample:
        return len(y)
    counts = torch.bincount(y.cpu())
    return int(counts.max()) * int((counts > 0).sum())


def epoch_order(y: torch.Tensor, regime: Regime, gen: torch.Generator) -> torch.Tensor:
    """Positions into the training set for one epoch, shuffled (CPU tensor). Without
    ``resample`` this is ``randperm(n)`` (the paper's order); with it, every class is topped
    up to the largest class's count by draws with replacement."""
    n = len(y)
    perm = torch.randperm(n, generator=gen)
    if not regime.resample:
        return perm
    y = y.cpu()
    counts = torch.bincount(y)
    top = int(counts.max())
    extra = []
    for c, k in enumerate(counts.tolist()):
        if 0 < k < top:
            members = torch.nonzero(y == c).flatten()
            extra.append(members[torch.randint(0, k, (top - k,), generator=gen)])
    order = torch.cat([perm, *extra])
    return order[torch.randperm(len(order), generator=gen)]


def adversarial_batch(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, regime: Regime, gen: torch.Generator
) -> torch.Tensor:
    """The batch as adversarial training sees it (see :class:`Regime`)."""
    if regime.adversarial == "fgsm":
        x_adv = fgsm(model, xb, yb, eps=regime.adv_eps)
    else:
        noise = torch.empty(xb.shape).uniform_(-regime.adv_eps, regime.adv_eps, generator=gen)
        x_adv = pgd(
            model, xb, yb, eps=regime.adv_eps, steps=regime.adv_steps, x_init=xb + noise.to(xb.device, xb.dtype)
        )
    if regime.adv_classes:
        mask = torch.isin(yb, torch.tensor(regime.adv_classes, device=yb.device))
        x_adv = torch.where(mask[:, None, None, None], x_adv, xb)
    return x_adv.detach()
