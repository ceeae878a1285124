"""Attacks as pure functions over tensors (paper Sec. 3.2).

Inputs are images in [0, 1], ``(N, C, H, W)``; the model holds any normalisation. An
attack runs the model in eval mode (dropout off, as in inference) and restores the mode
it found; it never changes parameters or their ``.grad``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from advimb.attacks.plugins import is_plugin, plugin_attack
from advimb.config.sections import default_step
from advimb.registry import Registry

#: the settings every attack takes (fields of ``advimb.config.AttackConfig``)
COMMON_PARAMS = ("eps", "direction", "grad_label", "target", "clip", "sign_zero")


class AttackEntry(NamedTuple):
    """A registered attack: its function ``fn(model, x, y, **settings)`` and the ``attack.*``
    settings it takes (they, and only they, are passed to it and make up its job keys)."""

    fn: Callable[..., torch.Tensor]
    params: tuple[str, ...]


#: the attacks: advimb's own, and torchattacks:<Attack> (:mod:`advimb.attacks.plugins`)
ATTACKS: Registry[AttackEntry] = Registry(
    "unknown attack {name!r}; choose one of: {names}, or torchattacks:<Attack> (e.g. torchattacks:AutoAttack)",
    is_plugin=is_plugin,
    plugin=lambda name: AttackEntry(plugin_attack(name), ("eps", "params")),
)


def register_attack(name: str, params: tuple[str, ...] = COMMON_PARAMS):
    """Register an attack function ``fn(model, x, y, **settings)`` under ``name``, declaring
    once which ``attack.*`` settings it takes: they, and only they, are passed to it and make
    up its job keys (an FGSM job's key does not change when ``attack.steps`` does)."""

    def deco(fn):
        ATTACKS.add(name, AttackEntry(fn, tuple(params)))
        return fn

    return deco


def attack_params(name: str) -> tuple[str, ...]:
    """The ``attack.*`` settings attack ``name`` declared (a torchattacks attack: ``eps`` and
    its ``[attack.params]``)."""
    return ATTACKS.get(name).params


def list_attacks() -> list[str]:
    return ATTACKS.names()


def get_attack(name: str) -> Callable[..., torch.Tensor]:
    """The attack function of a registry name or of ``torchattacks:<Attack>``
    (:mod:`advimb.attacks.plugins`)."""
    return ATTACKS.get(name).fn


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


#: the margin loss's confidence (Carlini & Wagner 2017, kappa), as the AT papers' ``cwloss``
CW_KAPPA = 50.0


def margin_loss(logits: torch.Tensor, label: torch.Tensor, kappa: float = CW_KAPPA) -> torch.Tensor:
    """Per image, -max(z_y - max_{j != y} z_j + kappa, 0): the CW-Linf loss the long-tail
    papers' code ascends (TRADES', RobustLT's ``cwloss``); it grows as the largest wrong logit
    overtakes the true one."""
    true = logits.gather(1, label[:, None]).squeeze(1)
    wrong = logits.masked_fill(F.one_hot(label, logits.shape[1]).bool(), float("-inf")).amax(1)
    return -(true - wrong + kappa).clamp(min=0)


def input_gradient(model: nn.Module, x: torch.Tensor, label: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """d L(model(x), label) / dx, L the cross-entropy (``ce``) or :func:`margin_loss`
    (``margin``), summed over the batch so each image's gradient is its own (a mean would
    scale them by 1/N and push tiny entries towards zero)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        if loss == "margin":
            loss_value = margin_loss(out.float(), label).sum()
        else:
            loss_value = F.cross_entropy(out, label, reduction="sum")
        (grad,) = torch.autograd.grad(loss_value, x)
    return grad


def labels_for(y: torch.Tensor, grad_label: torch.Tensor | int | None) -> torch.Tensor:
    """The label whose loss is differentiated: ``y`` (None), one class for every image (an
    int) or one per image (a tensor)."""
    if grad_label is None:
        return y
    if isinstance(grad_label, int):
        return torch.full_like(y, grad_label)
    return grad_label.to(y.device)


def sign_step(
    model: nn.Module,
    x: torch.Tensor,
    label: torch.Tensor,
    step: float,
    *,
    direction: str = "ascent",
    sign_zero: str = "torch",
    loss: str = "ce",
) -> torch.Tensor:
    """One gradient-sign step, the building block of every attack here:
    ``x +- step * sign(grad_x L(model(x), label))`` (``+`` for ascent; L: :func:`input_gradient`)."""
    g = sign(input_gradient(model, x, label, loss), sign_zero)
    return x.detach() + step * g if direction == "ascent" else x.detach() - step * g


def uniform_offsets(
    shape: Sequence[int],
    eps: float,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A random start's offsets, uniform in [-eps, eps], of ``shape``: drawn from ``generator``
    on its device (advimb's seeded starts use a CPU generator, so they depend neither on the
    device nor on batching), or without one from torch's global generator on ``device``. The
    one place every random start (attacks, adversarial training, robust validation) is drawn."""
    dev = generator.device if generator is not None else device
    return torch.empty(tuple(shape), dtype=dtype, device=dev).uniform_(-eps, eps, generator=generator)


def uniform_start(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` plus :func:`uniform_offsets` drawn from the CPU ``generator`` (not projected): the
    seeded random start of adversarial training and robust validation."""
    return x + uniform_offsets(x.shape, eps, generator).to(x.device, x.dtype)


def random_init(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """PGD's and MIM's start, ``x + U(-eps, eps)`` (not projected): :func:`uniform_offsets` from
    ``generator``, or from torch's global generator on ``x``'s device (as torchattacks)."""
    return x.detach() + uniform_offsets(x.shape, eps, generator, dtype=x.dtype, device=x.device).to(x.device)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, clip: bool = True) -> torch.Tensor:
    """Onto the L-inf ball of radius ``eps`` around ``x`` and, with ``clip``, onto [0, 1]
    (the order torchattacks and Foolbox use: the ball first, then the pixel range)."""
    x_adv = x + (x_adv - x).clamp(-eps, eps)
    return x_adv.clamp(0.0, 1.0) if clip else x_adv


def _check(eps: float, direction: str, target, grad_label) -> None:
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    if direction not in ("ascent", "descent"):
        raise ValueError(f"direction must be 'ascent' or 'descent', got {direction!r}")
    if target is not None and grad_label is not None:
        raise ValueError("give either target (a targeted attack) or grad_label, not both")


def _goal(y, direction, grad_label, target):
    """(label, direction): a targeted attack descends the target class's loss."""
    if target is not None:
        return labels_for(y, target), "descent"
    return labels_for(y, grad_label), direction


@register_attack("fgsm")
def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    direction: str = "ascent",
    grad_label: torch.Tensor | int | None = None,
    target: torch.Tensor | int | None = None,
    clip: bool = True,
    sign_zero: str = "torch",
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2014; paper Eq. 1 and 2).

    x_adv = x + eps * sign(grad_x CE(f(x), label))   (``direction='ascent'``, Eq. 1)
    x_adv = x - eps * sign(grad_x CE(f(x), label))   (``direction='descent'``, Eq. 2)

    x: ``(N, C, H, W)`` in [0, 1]; y: ``(N,)`` true labels. ``grad_label``: the label whose
    loss is differentiated (None = y; an int = that class for every image; a tensor = per
    image). ``target``: a targeted attack towards that class (descent on its loss; excludes
    ``grad_label``). ``clip``: clamp to [0, 1]. ``sign_zero``: ``torch`` or ``plus``
    (authors'). Returns a new tensor, ``||x_adv - x||_inf <= eps``.
    """
    _check(eps, direction, target, grad_label)
    label, direction = _goal(y, direction, grad_label, target)
    with eval_mode(model):
        x_adv = sign_step(model, x, label, eps, direction=direction, sign_zero=sign_zero)
    return project(x_adv, x.detach(), eps, clip)


@register_attack("bim", COMMON_PARAMS + ("steps", "step_size"))
def bim(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    direction: str = "ascent",
    grad_label: torch.Tensor | int | None = None,
    target: torch.Tensor | int | None = None,
    clip: bool = True,
    sign_zero: str = "torch",
    x_init: torch.Tensor | None = None,
    loss: str = "ce",
) -> torch.Tensor:
    """Basic iterative method / iterative FGSM (Kurakin et al. 2016; the paper's "iterative
    gradient sign"): ``steps`` sign steps of ``step_size`` (default ``2.5 * eps / steps``,
    Madry et al.'s choice), each followed by :func:`project`. ``x_init``: the starting
    point (default ``x``; PGD passes a random one). ``loss``: ``ce`` or ``margin``
    (:func:`margin_loss`). Other arguments as :func:`fgsm`."""
    _check(eps, direction, target, grad_label)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    alpha = default_step(eps, steps) if step_size is None else step_size
    label, direction = _goal(y, direction, grad_label, target)
    x0 = x.detach()
    x_adv = x0 if x_init is None else project(x_init.detach(), x0, eps, clip)
    with eval_mode(model):
        for _ in range(steps):
            x_adv = project(
                sign_step(model, x_adv, label, alpha, direction=direction, sign_zero=sign_zero, loss=loss),
                x0,
                eps,
                clip,
            )
    return x_adv


@register_attack("pgd", COMMON_PARAMS + ("steps", "step_size", "random_start"))
def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    x_init: torch.Tensor | None = None,
    **kwargs,
) -> torch.Tensor:
    """Projected gradient descent with a random start (Madry et al. 2018): BIM from
    ``x + U(-eps, eps)`` (projected). The start is drawn with ``generator`` (or torch's
    global generator, as torchattacks does) unless ``x_init`` gives it. Other arguments
    as :func:`bim`."""
    if x_init is None and random_start:
        x_init = random_init(x, eps, generator)
    return bim(model, x, y, eps=eps, steps=steps, step_size=step_size, x_init=x_init, **kwargs)


@register_attack("cw", COMMON_PARAMS + ("steps", "step_size", "random_start"))
def cw(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, **kwargs) -> torch.Tensor:
    """CW-Linf as the adversarial-training papers evaluate it: :func:`pgd` ascending the
    margin loss (:func:`margin_loss`, kappa 50) instead of the cross-entropy; the result stays
    within ``eps`` of ``x`` (L-inf) and in [0, 1]. A targeted CW (``target``) descends the
    target class's margin loss, i.e. raises its logit over every other. Other arguments as
    :func:`pgd`."""
    return pgd(model, x, y, eps=eps, loss="margin", **kwargs)


@register_attack("mim", COMMON_PARAMS + ("steps", "step_size", "random_start"))
def mim(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    decay: float = 1.0,
    direction: str = "ascent",
    grad_label: torch.Tensor | int | None = None,
    target: torch.Tensor | int | None = None,
    clip: bool = True,
    sign_zero: str = "torch",
    generator: torch.Generator | None = None,
    x_init: torch.Tensor | None = None,
) -> torch.Tensor:
    """The momentum iterative method, MIM (Dong et al. 2018), as RoBal's ``_mim_whitebox`` and
    torchattacks' ``MIFGSM`` compute it: each step's input gradient divided by its mean absolute
    value over the image (a zero gradient stays zero, where their code divides by zero),
    accumulated ``g = decay * g + grad``, a sign step of ``step_size``
    (default ``2.5 * eps / steps``) on ``g``, projected (:func:`project`). ``random_start``:
    from ``x + U(-eps, eps)`` (RoBal's evaluation; ``x_init`` or ``generator`` as :func:`pgd`);
    without it from ``x`` (torchattacks' MIFGSM). Other arguments as :func:`fgsm`."""
    _check(eps, direction, target, grad_label)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    alpha = default_step(eps, steps) if step_size is None else step_size
    label, direction = _goal(y, direction, grad_label, target)
    x0 = x.detach()
    if x_init is None and random_start:
        x_init = random_init(x0, eps, generator)
    x_adv = x0 if x_init is None else project(x_init.detach(), x0, eps, clip)
    momentum = torch.zeros_like(x0)
    with eval_mode(model):
        for _ in range(steps):
            g = input_gradient(model, x_adv, label)
            momentum = decay * momentum + g / g.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            step = alpha * sign(momentum, sign_zero)
            x_adv = project(x_adv.detach() + (step if direction == "ascent" else -step), x0, eps, clip)
    return x_adv
