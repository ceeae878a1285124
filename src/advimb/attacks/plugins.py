"""Attacks from torchattacks by name: ``attack.name = "torchattacks:<Attack>"`` (``PGD``,
``CW``, ``AutoAttack``...), its constructor's arguments in the config's ``[attack.params]``
table (``norm = "Linf"``, ``version = "standard"``...). ``torchattacks:<A>+<B>`` runs them as
torchattacks' ``MultiAttack`` does inside AutoAttack (each next attack on the images the last
left correctly classified; ``torchattacks:APGD+APGDT`` with ``loss = "ce"`` is AutoAttack's
first two parts, the "AA" of RoBal's evaluation), each part given the parameters it takes.

They run under advimb's conventions: the model in eval mode (restored afterwards), inputs in
[0, 1] with the normalisation inside the model, and the random state seeded from the job's
seed (torchattacks draws its random starts from torch's global generator, so each batch is
attacked inside ``torch.random.fork_rng`` seeded from the job's seed and the batch's first
image: results depend on ``attack.batch_size``, which is part of no key, so keep it fixed to
compare runs; each attack job is attacked on its own, seeded from its seed, so grouping jobs
changes nothing). ``attack.eps`` is passed as ``eps`` to attacks that take one, the dataset's
number of classes as ``n_classes`` and the job's seed as ``seed`` to those that take them,
unless ``[attack.params]`` sets them. The attacks are untargeted and ascend the true label's
loss: ``attack.target``, ``attack.grad_label`` and ``attack.direction`` apply only to
advimb's own attacks. Every name and parameter is checked when the config is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from advimb.errors import UserError

PREFIX = "torchattacks:"
#: what advimb fills in, if the attack's constructor takes it and the params do not set it
FILLED = ("eps", "n_classes", "seed")


def is_plugin(name: str) -> bool:
    return name.startswith(PREFIX)


def attack_class(name: str) -> type:
    """The torchattacks class of ``torchattacks:<Attack>`` (a one-line error if there is none)."""
    try:
        import torchattacks
    except ImportError:
        raise UserError(
            f"attack.name {name!r} needs torchattacks, which is not installed: pip install torchattacks"
        ) from None
    attr = name[len(PREFIX) :]
    cls = getattr(torchattacks, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, torchattacks.attack.Attack)):
        known = sorted(
            a
            for a in dir(torchattacks)
            if isinstance(getattr(torchattacks, a), type)
            and issubclass(getattr(torchattacks, a), torchattacks.attack.Attack)
            and a[0].isupper()
        )
        raise UserError(
            f"attack.name {name!r}: torchattacks {torchattacks.__version__} has no attack {attr!r}; "
            f"choose one of: {', '.join(a for a in known if a not in ('Attack', 'MultiAttack'))}"
        )
    return cls


def attack_classes(name: str) -> list[type]:
    """The torchattacks classes of ``torchattacks:<A>+<B>...``, in order."""
    return [attack_class(PREFIX + part) for part in name[len(PREFIX) :].split("+")]


def _arguments(cls: type[object]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "model"}


def _taken(classes: list[type]) -> set[str]:
    return set().union(*(_arguments(c) for c in classes))


def check_plugin(
    name: str, params: dict[str, Any], cfg_target: str = "", grad_label: str = "true", direction: str = "ascent"
) -> None:
    """The class exists, every parameter is one its constructor takes, and nothing asks for
    what only advimb's own attacks do."""
    classes = attack_classes(name)
    unknown = sorted(set(params) - _taken(classes))
    if unknown:
        raise UserError(
            f"attack.params.{unknown[0]}: {name} takes no such argument; it takes {', '.join(sorted(_taken(classes)))}"
        )
    if cfg_target or grad_label != "true" or direction != "ascent":
        raise UserError(
            f"attack.name {name!r}: torchattacks attacks run untargeted on the true label's loss; "
            "leave attack.target, attack.grad_label and attack.direction at their defaults"
        )


def plugin_attack(name: str) -> Callable[..., torch.Tensor]:
    """``fn(model, x, y, *, eps, params, num_classes, seed) -> x_adv`` for a torchattacks name."""
    classes = attack_classes(name)

    def build(model: nn.Module, eps: float, params: dict[str, Any], num_classes: int, seed: int) -> Any:
        parts = []
        for cls in classes:
            takes = _arguments(cls)
            kw = {k: v for k, v in params.items() if k in takes}
            for k, v in zip(FILLED, (eps, num_classes, seed)):
                if k in takes and k not in kw:
                    kw[k] = v
            parts.append(cls(model, **kw))
        if len(parts) == 1:
            return parts[0]
        import torchattacks

        return torchattacks.MultiAttack(parts)

    def run(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        params: dict[str, Any],
        num_classes: int,
        seed: int = 0,
    ) -> torch.Tensor:
        devices = [x.device] if x.device.type == "cuda" else []
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                # torchattacks reshapes with .view: give it the standard memory format
                attack = build(model, eps, params, num_classes, seed)
                return attack(x.detach().contiguous(memory_format=torch.contiguous_format), y).detach()
        finally:
            model.train(was_training)

    return run
