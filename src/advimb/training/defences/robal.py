"""RoBal (Wu et al., CVPR 2021, "Adversarial Robustness under Long-Tailed Distribution"), as
its code implements it (``wutong16/Adversarial_Long-Tail``; ``../shared/LONGTAIL.md``):

- the classifier ``CosPlus`` (``models/classifiers/basic_classifiers.py``): the features and
  the weights normalised, ``x / ||x||`` and ``W / (||W|| + gamma)``, gamma = 0.03125, the
  logits their products (scale 1 in training; no bias);
- the loss ``MultiMarginLoss`` (``methods/losses_inclass.py``) on the training images'
  cosines: the true class's cosine lowered by its margin ``tau_m * log(n_c / n_min) / s + m``,
  times ``s``, plus the class-aware bias ``tau_b * log(n_c / N)``, cross-entropy; plus 6 times
  TRADES' KL term between the softmax of the clean and the training images' cosines
  (``methods/train_modes.py::add_reg_train``, ``reg_opt: trades``);
- the training images (``add_reg_train``): PGD on the cross-entropy of the scale-1 cosines,
  the model in eval mode, from ``x + eps * U[0, 1)`` (a one-sided start: the code's
  ``torch.rand``), ``steps`` sign steps of 0.0078, each onto the eps ball and [0, 1];
- at test time RoBal-N evaluates ``10 * cos - 0.1 * log(prior)`` (the paper's Eq. 11, the
  ``PostProc`` classifier of its eval config); RoBal-R its training classifier as it is.

The bias is a per-class offset on the training logits, so RoBal declares the regime's
``logit_adjust`` (a composition with ``logit_adjust`` is refused: both set it); class weights,
where composed, weigh the margin term's images like every other loss here (Keras'
``class_weight``). Two departures from the code, both where its numbers cannot differ: a
feature vector of norm 0 gives cosines 0 (the code divides by zero), and the clean and the
training images each pass through the model once per step (the code passes the training
images twice, which moves the batch-norm running averages twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advimb.attacks.core import eval_mode, project, sign_step
from advimb.training.defences.base import Correction, Defence, Head, Loss, Regime, TrainingImages, cross_entropy
from advimb.training.defences.reweighting import log_prior

#: RoBal's code: the cosine classifier's gamma, the loss's scale and base margin, the KL's
#: weight, the training attack's step, and RoBal-N's test-time scale and prior weight
GAMMA, SCALE, MARGIN, BETA, STEP, TEST_SCALE, TAU_P = 0.03125, 10.0, 0.1, 6.0, 0.0078, 10.0, 0.1
#: the training attack's steps, RoBal's own (its configs' ``train_num_steps``), not ``experiments.adv_steps``
STEPS = 5


class CosineClassifier(nn.Module):
    """``scale * (x / ||x||) (W / (||W|| + gamma))^T``: RoBal's ``CosPlus`` (no bias; its
    running mean of the features, unused by RoBal-N and RoBal-R, left out). Initialised as the
    code does: ``W ~ U(-1/sqrt(in), 1/sqrt(in))``."""

    def __init__(self, in_features: int, num_classes: int, gamma: float = GAMMA, scale: float = 1.0) -> None:
        super().__init__()
        self.gamma, self.scale = gamma, scale
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ex = x / x.norm(2, 1, keepdim=True).clamp_min(1e-12)
        ew = self.weight / (self.weight.norm(2, 1, keepdim=True) + self.gamma)
        return self.scale * ex @ ew.t()


@dataclass(frozen=True)
class CosineHead(Head):
    """RoBal's cosine classifier (:class:`CosineClassifier`) in place of the model's last layer."""

    gamma: float = GAMMA

    def build(self, in_features: int, num_classes: int) -> nn.Module:
        return CosineClassifier(in_features, num_classes, self.gamma)


@dataclass(frozen=True)
class OneSidedPGDImages(TrainingImages):
    """PGD images as RoBal's code crafts them (``pgd_adv_train`` with its default uniform start,
    and ``add_reg_train``): ``steps`` sign steps of ``step_size`` (0.0078, its configs'
    ``train_step_size``) on the cross-entropy from ``x + eps * U[0, 1)`` (a one-sided start: the
    code's ``torch.rand``), each onto the eps ball and [0, 1], the model in eval mode."""

    steps: int = STEPS
    step_size: float = STEP
    stepped: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, eps: float, steps: int, classes: tuple[int, ...]) -> TrainingImages:
        return cls(eps, classes, steps)

    def _craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x_adv = x + self.eps * torch.rand(x.shape, generator=gen).to(x.device, x.dtype)
        with eval_mode(model):
            for _ in range(self.steps):
                x_adv = project(sign_step(model, x_adv, y, self.step_size), x, self.eps)
        return x_adv


@dataclass(frozen=True)
class RobalImages(OneSidedPGDImages):
    """RoBal's training images (:class:`OneSidedPGDImages`, RoBal's own 5 steps); the loss sees
    them beside the clean batch (its KL term)."""

    keeps_clean: ClassVar[bool] = True


def robal_margins(counts: tuple[int, ...], tau_m: float, s: float = SCALE, m: float = MARGIN) -> tuple[float, ...]:
    """Each class's margin, ``tau_m * log(n_c / n_min) / s + m`` (a class without images counts as one)."""
    n = [max(c, 1) for c in counts]
    return tuple(tau_m * math.log(c / min(n)) / s + m for c in n)


def robal_kl(cos_clean: torch.Tensor, cos_adv: torch.Tensor) -> torch.Tensor:
    """``KLDivLoss(sum)(log(softmax(adv) + 1e-12), softmax(clean)) / B``, as RoBal's code (TRADES'
    term, with its 1e-12)."""
    p_adv = F.softmax(cos_adv, 1)
    return F.kl_div(torch.log(p_adv + 1e-12), F.softmax(cos_clean, 1), reduction="sum") / len(cos_clean)


def robal_loss(
    cos_clean: torch.Tensor,
    cos_adv: torch.Tensor,
    y: torch.Tensor,
    margins: torch.Tensor,
    bias: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    s: float = SCALE,
    beta: float = BETA,
) -> torch.Tensor:
    """RoBal's training loss: CE(s * (cos_adv - margin_y on the true class) + bias, y) (each
    image's term times ``weight[y]`` where class weights are composed) + beta * :func:`robal_kl`."""
    z = cos_adv - F.one_hot(y, cos_adv.shape[1]).to(cos_adv.dtype) * margins[y][:, None]
    return cross_entropy(s * z, y, weight, bias) + beta * robal_kl(cos_clean, cos_adv)


@dataclass(frozen=True)
class RobalLoss(Loss):
    """:func:`robal_loss` with the classes' ``margins``; the bias comes as the regime's logit
    adjustment."""

    margins: tuple[float, ...] = ()
    s: float = SCALE
    beta: float = BETA

    def __call__(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor | None,
        adjust: torch.Tensor | None,
        logits_adv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if logits_adv is None:  # a bug: RoBal's loss comes with its training images
            raise ValueError("RoBal's loss needs the logits of its training images")
        margins = torch.tensor(self.margins, device=logits.device, dtype=logits.dtype)
        return robal_loss(logits, logits_adv, y, margins, adjust, weight, self.s, self.beta)


@dataclass(frozen=True)
class Robal(Defence):
    """RoBal with ``tau_b`` (the bias's weight) and ``tau_m`` (the class-aware margin's);
    ``corrected``: RoBal-N's test-time ``10 * cos - 0.1 * log(prior)``, else RoBal-R's
    classifier as trained."""

    tau_b: float = 1.2
    tau_m: float = 0.0
    corrected: bool = True
    declares: ClassVar[frozenset[str]] = frozenset({"images", "loss", "head", "logit_adjust"})

    @property
    def fields(self) -> frozenset[str]:
        return self.declares | {"correction"} if self.corrected else self.declares

    def head(self) -> Head:
        return CosineHead()

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """The name, the training attack's eps (``experiments.adv_eps``), and RoBal's constants
        (its 5 steps among them: RoBal's recipe, whatever ``experiments.adv_steps`` says)."""
        return {
            "name": self.name,
            "eps": adv_eps,
            "steps": STEPS,
            "step_size": STEP,
            "tau_b": self.tau_b,
            "tau_m": self.tau_m,
            "s": SCALE,
            "m": MARGIN,
            "beta": BETA,
            "gamma": GAMMA,
            "test": {"scale": TEST_SCALE, "tau_p": TAU_P} if self.corrected else None,
        }

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        counts = tuple(int(v) for v in torch.bincount(y_train.cpu(), minlength=num_classes).tolist())
        prior = log_prior(y_train, num_classes)
        correction = None
        if spec["test"] is not None:
            t = spec["test"]
            correction = Correction(tuple(-t["tau_p"] * v for v in prior), t["scale"])
        return Regime(
            images=RobalImages(spec["eps"], (), spec["steps"], spec["step_size"]),
            loss=RobalLoss(robal_margins(counts, spec["tau_m"], spec["s"], spec["m"]), spec["s"], spec["beta"]),
            head=CosineHead(spec["gamma"]),
            logit_adjust=tuple(spec["tau_b"] * v for v in prior),
            correction=correction,
        )
