"""Attacks as pure functions over tensors (paper Sec. 3.2).

Inputs are images in [0, 1], ``(N, C, H, W)``; the model holds any normalisation. An
attack runs the model in eval mode (dropout off, as in inference) and restores the mode
it found; it never changes parameters or their ``.grad``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

_REGISTRY: dict[str, Callable[..., torch.Tensor]] = {}


def register_attack(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def list_attacks() -> list[str]:
    return sorted(_REGISTRY)


def get_attack(name: str) -> Callable[..., torch.Tensor]:
    from advimb.errors import UserError

    if name not in _REGISTRY:
        raise UserError(f"unknown attack {name!r}; choose one of: {', '.join(list_attacks())}")
    return _REGISTRY[name]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode and put back the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def sign(g: torch.Tensor, sign_zero: str = "torch") -> torch.Tensor:
    """``torch.sign`` (sign(0) = 0) or the authors' convention (sign(0) = +1)."""
    if sign_zero == "plus":
        return torch.where(g >= 0, 1.0, -1.0).to(g.dtype)
    return torch.sign(g)


def input_gradient(model: nn.Module, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """d CE(model(x), label) / dx, summed over the batch so each image's gradient is its
    own (a mean would scale them by 1/N and push tiny entries towards zero)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), label, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


@register_attack("fgsm")
def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    direction: str = "ascent",
    grad_label: torch.Tensor | int | None = None,
    clip: bool = True,
    sign_zero: str = "torch",
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2014; paper Eq. 1 and 2).

    x_adv = x + eps * sign(grad_x CE(f(x), label))   (``direction='ascent'``, Eq. 1)
    x_adv = x - eps * sign(grad_x CE(f(x), label))   (``direction='descent'``, Eq. 2)

    x: ``(N, C, H, W)`` in [0, 1]; y: ``(N,)`` true labels. ``grad_label``: the label whose
    loss is differentiated (None = y; an int = that class for every image; a tensor = per
    image). ``clip``: clamp to [0, 1]. ``sign_zero``: ``torch`` or ``plus`` (authors').
    Returns a new tensor, ``||x_adv - x||_inf <= eps``.
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    if direction not in ("ascent", "descent"):
        raise ValueError(f"direction must be 'ascent' or 'descent', got {direction!r}")
    if grad_label is None:
        label = y
    elif isinstance(grad_label, int):
        label = torch.full_like(y, grad_label)
    else:
        label = grad_label
    with eval_mode(model):
        g = input_gradient(model, x, label)
    step = eps * sign(g, sign_zero)
    x_adv = x.detach() + step if direction == "ascent" else x.detach() - step
    return x_adv.clamp(0.0, 1.0) if clip else x_adv
