"""The attack stage: attacks as pure tensor functions in [0, 1] with a registry (``core``), and
their application to a model's test images with the config's settings, predictions and the
minimal flipping eps (``evaluate``). Imports ``advimb.config``, ``advimb.devices`` and
``advimb.data.imbalance`` (class names), nothing of training, the study or the report."""

from advimb.attacks.core import (
    bim,
    default_step,
    eval_mode,
    fgsm,
    get_attack,
    list_attacks,
    pgd,
    project,
    register_attack,
    sign,
    sign_step,
)

__all__ = [
    "bim",
    "default_step",
    "eval_mode",
    "fgsm",
    "get_attack",
    "list_attacks",
    "pgd",
    "project",
    "register_attack",
    "sign",
    "sign_step",
]
