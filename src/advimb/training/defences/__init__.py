"""The training-time defences of ``experiments.defences``, a registry of objects: each
declares what it changes in a model's training (:class:`~advimb.training.defences.base.Regime`:
class weights, re-sampling, logit offsets, the training images, the loss) and what defines it
for a job's key. ``a+b`` composes registered defences (``pgd_at+logit_adjust`` is AT-BSL),
refused in one line where two parts change the same thing. A new defence is one new module
here: its :class:`~advimb.training.defences.base.Defence` subclass (and its images, loss,
head or test-time correction), registered with :func:`register_defence` (RoBal:
:mod:`advimb.training.defences.robal`).
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
    Correction,
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
from advimb.training.defences.robal import (
    CosineClassifier,
    CosineHead,
    OneSidedPGDImages,
    Robal,
    RobalImages,
    RobalLoss,
    robal_kl,
    robal_loss,
    robal_margins,
)

__all__ = [
    "DEFENCES",
    "AdversarialTraining",
    "ClassWeight",
    "Composed",
    "Corrected",
    "Correction",
    "CosineClassifier",
    "CosineHead",
    "CrossEntropy",
    "Defence",
    "FGSMImages",
    "FGSMRSImages",
    "Head",
    "LogitAdjust",
    "Loss",
    "OneSidedPGDImages",
    "PGDImages",
    "Regime",
    "Resample",
    "Robal",
    "RobalImages",
    "RobalLoss",
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
    "robal_kl",
    "robal_loss",
    "robal_margins",
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
    AdversarialTraining(
        "pgd_at_robal",
        "PGD-AT as RoBal's code trains its baseline: PGD steps of 0.0078 from x + eps U[0, 1)",
        OneSidedPGDImages,
    ),
    Robal(
        "robal_n",
        "RoBal-N (Wu et al. 2021): cosine classifier, bias 1.2 log prior, margin 0.1, + 6 KL, PGD-5 images; "
        "tested as 10 cos - 0.1 log prior",
        tau_b=1.2,
        tau_m=0.0,
        corrected=True,
    ),
    Robal(
        "robal_r",
        "RoBal-R (Wu et al. 2021): cosine classifier, bias 1.5 log prior, margin 0.3 log(n_c / n_min) / 10 + 0.1, "
        "+ 6 KL, PGD-5 images; tested as trained",
        tau_b=1.5,
        tau_m=0.3,
        corrected=False,
    ),
):
    register_defence(_d)
