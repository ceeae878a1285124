"""Clean and adversarial evaluation (paper Sec. 3.1 and 4).

Clean: predictions of a model on the test images, per-class accuracy, confusion matrix.
Attack: the test images of one class perturbed with one model's gradient (the *gradient
model*) and classified by one or more *evaluated models*: the same model (same-model
attack) or another (different-model, i.e. transfer). For each evaluated model we keep the
per-image predictions before and after, and the histogram of predicted labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from advimb.attacks import eval_mode, get_attack
from advimb.config import AttackConfig
from advimb.imbalance import parse_class
from advimb.train import to_float


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500,
            channels_last: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of ``model`` (eval mode) for images ``x``:
    uint8 NHWC (scaled here) or float NCHW in [0, 1]."""
    labels, probs = [], []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if xb.dtype == torch.uint8:
                xb = to_float(xb, channels_last)
            p = torch.softmax(model(xb).float(), dim=1)
            labels.append(p.argmax(1).cpu())
            probs.append(p.cpu())
    return torch.cat(labels).numpy(), torch.cat(probs).numpy()


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def clean_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, Any]:
    cm = confusion(y_true, y_pred, num_classes)
    n = cm.sum(1)
    return {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "per_class_accuracy": (np.diag(cm) / np.maximum(n, 1)).tolist(),
        "n_per_class": n.tolist(),
        "confusion": cm.tolist(),
    }


def attack_kwargs(cfg: AttackConfig, classes: tuple[str, ...]) -> dict[str, Any]:
    """Keyword arguments of the attack function from the config (class names resolved)."""
    grad_label = None if cfg.grad_label == "true" else parse_class(cfg.grad_label, classes)
    return {"eps": cfg.eps, "direction": cfg.direction, "grad_label": grad_label,
            "clip": cfg.clip, "sign_zero": cfg.sign_zero}


def attack_images(grad_model: nn.Module, x_u8: torch.Tensor, y: torch.Tensor,
                  cfg: AttackConfig, classes: tuple[str, ...],
                  channels_last: bool = True) -> torch.Tensor:
    """Adversarial images (float NCHW) of uint8 NHWC ``x_u8`` from ``grad_model``'s gradient,
    in batches of ``cfg.batch_size`` (FGSM is per-image, so batching changes nothing)."""
    attack = get_attack(cfg.name)
    kwargs = attack_kwargs(cfg, classes)
    out = []
    for i in range(0, len(x_u8), cfg.batch_size):
        xb = to_float(x_u8[i:i + cfg.batch_size], channels_last)
        out.append(attack(grad_model, xb, y[i:i + cfg.batch_size], **kwargs))
    return torch.cat(out)


def histogram(pred: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(pred, minlength=num_classes).tolist()
