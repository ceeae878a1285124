"""Clean and adversarial evaluation (paper Sec. 3.1 and 4).

Clean: predictions of a model on the test images, per-class accuracy, confusion matrix.
Attack: the test images of one class perturbed with one model's gradient (the *gradient
model*) and classified by one or more *evaluated models*: the same model (same-model
attack) or another (different-model, i.e. transfer). For each evaluated model we keep the
per-image predictions before and after; every number is derived from them in
:mod:`advimb.results.metrics`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from advimb.attacks.core import attack_params, eval_mode, get_attack, uniform_offsets
from advimb.attacks.plugins import check_plugin, is_plugin
from advimb.config.sections import AttackConfig
from advimb.config.seeds import derive_seed
from advimb.data.imbalance import parse_class
from advimb.devices import auto_batch, to_float


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int = 500, channels_last: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of ``model`` (eval mode) for images ``x``:
    uint8 NHWC (scaled here) or float NCHW in [0, 1]."""
    labels, probs = [], []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            if xb.dtype == torch.uint8:
                xb = to_float(xb, channels_last)
            p = torch.softmax(model(xb).float(), dim=1)
            labels.append(p.argmax(1).cpu())
            probs.append(p.cpu())
    return torch.cat(labels).numpy(), torch.cat(probs).numpy()


@torch.no_grad()
def predict_stacked(models: Sequence[nn.Module], x: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Labels of every model (one architecture without batch norm, eval mode) for uint8
    NHWC images ``x``, ``(M, N)``: the models stacked (``torch.func``) and each batch
    classified by all of them in one vmap-ed pass; ``batch_size`` images x models per pass."""
    base = copy.deepcopy(models[0]).to("meta").eval()
    params, buffers = stack_module_state([m.eval() for m in models])
    run = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)), in_dims=(0, 0, None))
    per = max(batch_size // len(models), 1)
    labels = [run(params, buffers, to_float(x[i : i + per], False)).argmax(2).cpu() for i in range(0, len(x), per)]
    return torch.cat(labels, 1).numpy()


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


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
    """Keyword arguments of the attack function: the settings it declared
    (:func:`advimb.attacks.core.attack_params`), class names resolved to indices."""
    values = {
        "grad_label": None if cfg.grad_label == "true" else parse_class(cfg.grad_label, classes),
        "target": parse_class(cfg.target, classes) if cfg.target else None,
        "step_size": cfg.step_size or None,
    }
    if is_plugin(cfg.name):
        check_plugin(cfg.name, cfg.params, cfg.target, cfg.grad_label, cfg.direction)
        return {"eps": cfg.eps, "params": dict(cfg.params), "num_classes": len(classes)}
    return {k: values[k] if k in values else getattr(cfg, k) for k in attack_params(cfg.name)}


def attack_spec(cfg: AttackConfig) -> dict[str, Any]:
    """The attack settings that change its result (for job keys): its name and the settings
    it declared, as the config gives them (no ``target`` when untargeted)."""
    d = {"name": cfg.name, **{k: getattr(cfg, k) for k in attack_params(cfg.name)}}
    if not cfg.target:
        d.pop("target", None)
    return d


def random_start(n: int, image_shape: tuple[int, int, int], eps: float, seed: int) -> torch.Tensor:
    """PGD's random start offsets, uniform in [-eps, eps], float NCHW ``(n, C, H, W)`` drawn
    on the CPU from ``seed`` (so they depend neither on the device nor on batching)."""
    return uniform_offsets((n, *image_shape), eps, torch.Generator().manual_seed(seed))


def attack_images(
    grad_model: nn.Module,
    x_u8: torch.Tensor,
    y: torch.Tensor,
    cfg: AttackConfig,
    classes: tuple[str, ...],
    channels_last: bool = True,
    seed: int = 0,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial images (float NCHW) of uint8 NHWC ``x_u8`` from ``grad_model``'s gradient,
    in batches of ``cfg.batch_size`` (0 = the device's default, ``devices.AUTO_BATCH``).
    Each image's attack is independent of the others, so the result does not depend on the
    batch size or on which other images share the call. A random start (PGD) is ``start``
    (offsets from :func:`random_start`, one row per image) or else drawn for all images from
    ``seed``."""
    attack = get_attack(cfg.name)
    kwargs = attack_kwargs(cfg, classes)
    init = None  # the random start's offsets, for an attack that takes one
    if kwargs.get("random_start"):
        init = (
            start
            if start is not None
            else random_start(x_u8.shape[0], (x_u8.shape[3], x_u8.shape[1], x_u8.shape[2]), cfg.eps, seed)
        )
    bs = auto_batch(cfg.batch_size, x_u8.device)
    out = []
    for i in range(0, len(x_u8), bs):
        xb = to_float(x_u8[i : i + bs], channels_last)
        kw = dict(kwargs)
        if "num_classes" in kwargs:  # torchattacks: seeded per batch (it draws from torch's generator)
            kw["seed"] = derive_seed(seed, "torchattacks", i)
        if init is not None:
            kw["x_init"] = xb + init[i : i + bs].to(xb.device, xb.dtype)
        out.append(attack(grad_model, xb, y[i : i + bs], **kw))
    return torch.cat(out) if out else torch.zeros((0, x_u8.shape[3], x_u8.shape[1], x_u8.shape[2]), device=x_u8.device)


def minimal_eps(
    model: nn.Module,
    grad_model: nn.Module,
    x_u8: torch.Tensor,
    y: torch.Tensor,
    cfg: AttackConfig,
    classes: tuple[str, ...],
    eps_max: float,
    batch_size: int = 500,
    channels_last: bool = True,
    iters: int = 10,
) -> np.ndarray:
    """Per image, the smallest FGSM eps in (0, ``eps_max``] at which ``model`` stops
    predicting the true class, to ``eps_max / 2**iters``; ``inf`` when even ``eps_max`` does
    not flip it.

    FGSM's direction d = sign(grad) at the clean image does not depend on eps (the gradient
    of ``grad_model`` is taken once), so the search runs along the ray clip(x + eps * d):
    bisection keeps ``hi`` flipped and ``lo`` not. The ray need not be monotone (an image
    can flip, then flip back), so the result is *a* flipping eps with no smaller flipping
    eps found by the search - the usual bisection estimate, not a certified minimum.
    """
    attack_cfg = dataclasses.replace(cfg, name="fgsm", eps=1.0, clip=False)
    out = []
    for i in range(0, len(x_u8), batch_size):
        x = to_float(x_u8[i : i + batch_size], channels_last)
        yb = y[i : i + batch_size]
        d = get_attack("fgsm")(grad_model, x, yb, **attack_kwargs(attack_cfg, classes)) - x

        def flipped(e: torch.Tensor, x: torch.Tensor = x, d: torch.Tensor = d, yb: torch.Tensor = yb) -> torch.Tensor:
            xe = x + e.view(-1, 1, 1, 1) * d
            xe = xe.clamp(0, 1) if cfg.clip else xe
            with torch.no_grad(), eval_mode(model):
                return model(xe).argmax(1) != yb

        hi = torch.full((len(x),), float(eps_max), device=x.device)
        lo = torch.zeros_like(hi)
        ok = flipped(hi)
        for _ in range(iters):
            mid = (lo + hi) / 2
            f = flipped(mid)
            hi = torch.where(f, mid, hi)
            lo = torch.where(f, lo, mid)
        out.append(torch.where(ok, hi, torch.full_like(hi, float("inf"))).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)
