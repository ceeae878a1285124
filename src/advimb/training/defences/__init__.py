"""The training-time defences of ``experiments.defences``, a registry of objects: each
declares what it changes in a model's training (:class:`~advimb.training.defences.base.Regime`:
class weights, re-sampling, logit offsets, the training images, the loss) and what defines it
for a job's key. ``a+b`` composes registered defences (``pgd_at+logit_adjust`` is AT-BSL),
refused in one line where two parts change the same thing. A new defence is one new module
here: its :class:`~advimb.training.defences.base.Defence` subclass (and its images or loss),
registered with :func:`register_defence`.
"""

from __future__ import annotations

from advimb.registry import Registry
from advimb.training.defences.adversarial import (
    AdversarialTraining,
    FGSMImages,
    FGSMRSImages,
    PGDImages,
    Trades,
    TradesLoss,
    TradesNeighbours,
    trades_kl,
    trades_loss,
    trades_neighbour,
)
from advimb.training.defences.base import (
    Composed,
    Corrected,
    CrossEntropy,
    Defence,
    Head,
    Loss,
    Regime,
    TrainingImages,
    attach_head,
    composed,
    cross_entropy,
)
from advimb.training.defences.reweighting import ClassWeight, LogitAdjust, Resample, balanced_weights, log_prior

__all__ = [
    "DEFENCES",
    "AdversarialTraining",
    "ClassWeight",
    "Composed",
    "Corrected",
    "CrossEntropy",
    "Defence",
    "FGSMImages",
    "FGSMRSImages",
    "Head",
    "LogitAdjust",
    "Loss",
    "PGDImages",
    "Regime",
    "Resample",
    "Trades",
    "TradesLoss",
    "TradesNeighbours",
    "TrainingImages",
    "attach_head",
    "balanced_weights",
    "compose",
    "cross_entropy",
    "get_defence",
    "list_defences",
    "log_prior",
    "register_defence",
    "trades_kl",
    "trades_loss",
    "trades_neighbour",
]


def compose(name: str) -> Defence:
    """The defence ``a+b`` from registered parts (:func:`~advimb.training.defences.base.composed`)."""
    return composed(name, tuple(DEFENCES.get(n) for n in name.split("+")))


#: the defences of ``experiments.defences``, in their canonical order; ``a+b`` composes them
DEFENCES: Registry[Defence] = Registry(
    "config experiments.defences: {name!r} is not one of {names} (or a composition such as pgd_at+logit_adjust)",
    sort=False,
    is_plugin=lambda name: "+" in name,
    plugin=compose,
)


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
    AdversarialTraining("fgsm_at", "trained on FGSM images crafted against the current model", FGSMImages),
    AdversarialTraining("pgd_at", "trained on PGD images crafted against the current model", PGDImages),
    AdversarialTraining(
        "fgsm_rs_at",
        "trained on FGSM images from a random start (fast AT, Wong et al. 2020, step 1.25 eps)",
        FGSMRSImages,
    ),
    Trades("trades", "TRADES (Zhang et al. 2019): clean CE + 6 KL(f(x) || f(x')), x' maximising the KL"),
):
    register_defence(_d)
