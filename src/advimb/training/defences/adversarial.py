"""Adversarial training: the images each kind crafts against the current model (FGSM, FGSM
from a random start, PGD, TRADES' KL-maximising neighbour) and TRADES' loss. A defence here
declares its training images (and TRADES its loss); the trainer only calls them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advimb.attacks.core import eval_mode, fgsm, pgd, project, uniform_start
from advimb.config.sections import default_step
from advimb.training.defences.base import Defence, Loss, Regime, TrainingImages, cross_entropy


@dataclass(frozen=True)
class FGSMImages(TrainingImages):
    """FGSM images (Goodfellow et al. 2015), clipped to [0, 1]."""

    def _craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return fgsm(model, x, y, eps=self.eps)


@dataclass(frozen=True)
class FGSMRSImages(TrainingImages):
    """Fast AT's images (Wong et al. 2020): one FGSM step of 1.25 eps from a uniform random
    start, projected onto the eps ball and [0, 1]."""

    def _craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x0 = project(uniform_start(x, self.eps, gen), x, self.eps)
        return project(fgsm(model, x0, y, eps=1.25 * self.eps, clip=False), x, self.eps)


@dataclass(frozen=True)
class PGDImages(TrainingImages):
    """PGD images (Madry et al. 2018): ``steps`` steps of 2.5 eps / steps from a random start."""

    steps: int = 7
    stepped: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, eps: float, steps: int, classes: tuple[int, ...]) -> TrainingImages:
        return cls(eps, classes, steps)

    def _craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return pgd(model, x, y, eps=self.eps, steps=self.steps, x_init=uniform_start(x, self.eps, gen))


@dataclass(frozen=True)
class TradesNeighbours(PGDImages):
    """TRADES' x' (:func:`trades_neighbour`), given to the loss beside the clean batch."""

    keeps_clean: ClassVar[bool] = True

    def _craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return trades_neighbour(model, x, self.eps, self.steps, gen)


def trades_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """TRADES' robust term: KL(softmax(clean) || softmax(adv)) summed over classes, averaged
    over the batch (``KLDivLoss(size_average=False)`` divided by the batch size, as its code)."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="sum") / len(logits_clean)


def trades_loss(
    logits_clean: torch.Tensor,
    logits_adv: torch.Tensor,
    y: torch.Tensor,
    beta: float,
    adjust: torch.Tensor | None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The natural term :func:`~advimb.training.defences.base.cross_entropy` (with the logit
    adjustment and the class weights where declared) + beta * :func:`trades_kl` (on the raw
    logits, unweighted: the class weights re-weigh the fit to the labels, not the smoothness)."""
    return cross_entropy(logits_clean, y, weight, adjust) + beta * trades_kl(logits_clean, logits_adv)


@dataclass(frozen=True)
class TradesLoss(Loss):
    """TRADES' loss (:func:`trades_loss`) with weight ``beta``."""

    beta: float = 6.0

    def __call__(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor | None,
        adjust: torch.Tensor | None,
        logits_adv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if logits_adv is None:  # a bug: TRADES' loss comes with its neighbours
            raise ValueError("TRADES' loss needs the logits of its neighbours")
        return trades_loss(logits, logits_adv, y, self.beta, adjust, weight)


def trades_neighbour(model: nn.Module, x: torch.Tensor, eps: float, steps: int, gen: torch.Generator) -> torch.Tensor:
    """TRADES' x': from x + 0.001 N(0, 1), ``steps`` sign steps of 2.5 eps / steps ascending
    KL(f(x) || f(x')), each projected onto the eps ball and [0, 1] (the model in eval mode)."""
    step = default_step(eps, steps)
    with eval_mode(model):
        with torch.no_grad():
            p_clean = F.softmax(model(x).float(), 1)
        x_adv = x + 0.001 * torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                kl = F.kl_div(F.log_softmax(model(x_adv).float(), 1), p_clean, reduction="sum")
                (g,) = torch.autograd.grad(kl, x_adv)
            x_adv = project(x_adv.detach() + step * g.sign(), x, eps)
    return x_adv.detach()


@dataclass(frozen=True)
class AdversarialTraining(Defence):
    """Training on ``images`` (a :class:`TrainingImages` kind) crafted against the current model."""

    images: type[TrainingImages] = PGDImages
    declares: ClassVar[frozenset[str]] = frozenset({"images"})

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """The name, eps and scope (only a model with an under-sampled class, ``targeted``,
        can restrict it to the minority class), and the steps of a stepped attack."""
        out = {"name": self.name, "eps": adv_eps, "scope": adv_scope if targeted else "all"}
        return {**out, "steps": adv_steps} if self.images.stepped else out

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        scope = (target,) if spec["scope"] == "minority" and target is not None else ()
        return Regime(images=self.images.from_spec(spec["eps"], spec.get("steps", 7), scope))


@dataclass(frozen=True)
class Trades(AdversarialTraining):
    """TRADES: the clean cross-entropy plus beta times the KL divergence to the model's output
    on a KL-maximising neighbour."""

    images: type[TrainingImages] = TradesNeighbours
    beta: float = 6.0
    declares: ClassVar[frozenset[str]] = frozenset({"images", "loss"})

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        return {**super().spec(adv_eps, adv_scope, adv_steps, targeted), "beta": self.beta}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        images = super().regime(spec, y_train, num_classes, target).images
        return Regime(images=images, loss=TradesLoss(self.beta))
