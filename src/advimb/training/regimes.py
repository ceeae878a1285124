"""How a model is trained beyond the optimiser: the defences of ``experiments.defences`` as a
registry of objects (class weights, re-sampling, logit adjustment, FGSM, FGSM with a random
start, PGD and TRADES adversarial training; each declares what defines it for a job's key and
builds its own :class:`Regime`), and their compositions: ``pgd_at+logit_adjust`` is AT-BSL
(PGD-AT with the balanced-softmax loss), built by :class:`Composed` from its parts. The
paper's plain training is ``Regime()``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advimb.attacks.core import eval_mode, fgsm, pgd, project
from advimb.config.sections import default_step
from advimb.errors import UserError
from advimb.registry import Registry


@dataclass(frozen=True)
class Regime:
    """How a model is trained beyond the optimiser (``experiments.defences``); the default
    is the paper's plain training.

    ``class_weight``: per-class loss weights (Keras ``class_weight`` semantics: each
    image's loss times its class's weight, averaged over the batch). ``logit_adjust``: per-class
    offsets added to the logits in the training loss only (the logit-adjusted loss of Menon
    et al. 2021 with tau = 1: log of the class's share of the training set, which is the
    balanced softmax of Ren et al. 2020); predictions use the raw logits. ``resample``: every
    epoch, each class with fewer images than the largest is topped up to it by drawing its
    images again with replacement (fresh draws each epoch). ``adversarial``: ``fgsm``,
    ``fgsm_rs`` or ``pgd``: each batch is replaced by adversarial images crafted against the
    current model (eval mode) with eps ``adv_eps`` (FGSM-RS: one step of 1.25 eps from a
    uniform random start, Wong et al. 2020; PGD: ``adv_steps`` steps of 2.5 eps / steps from
    a random start), only for images whose label is in ``adv_classes`` when that is given;
    ``trades``: TRADES (Zhang et al. 2019): the loss is CE(f(x), y) + ``trades_beta`` *
    KL(f(x) || f(x')), x' from ``adv_steps`` sign steps ascending that KL from x + 0.001 N(0, 1).
    """

    class_weight: tuple[float, ...] = ()
    logit_adjust: tuple[float, ...] = ()
    resample: bool = False
    adversarial: str = ""
    adv_eps: float = 0.01
    adv_steps: int = 7
    adv_classes: tuple[int, ...] = ()
    trades_beta: float = 0.0


@dataclass(frozen=True)
class Defence:
    """A training-time defence: what defines it for a model's job key (:meth:`advimb.training.regimes.Defence.spec`) and the
    :class:`Regime` it trains that model with (:meth:`advimb.training.regimes.Defence.regime`, each kind of defence its own).
    ``adversarial``: the attack that crafts its training images (``fgsm``, ``pgd``; it then
    also defends the balanced model), "" for none."""

    name: str
    description: str = ""
    adversarial: str = ""

    @property
    def stackable(self) -> bool:
        """Can its models train in the study's one stack? Weights and re-sampling change
        only the loss and the epoch's order; adversarial training crafts each batch against
        its own model, so it trains one by one."""
        return not self.adversarial

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """What defines this defence for a model (part of its job key); the experiments'
        adversarial-training settings matter only to adversarial training."""
        return {"name": self.name}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        """The training regime of a model with this defence (its ``spec`` from :meth:`advimb.training.regimes.Defence.spec`)."""
        raise NotImplementedError(f"defence {self.name!r} builds no regime")  # a bug: every kind overrides it


@dataclass(frozen=True)
class ClassWeight(Defence):
    """Each image's loss weighted N / (C n_c)."""

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(class_weight=balanced_weights(y_train, num_classes))


@dataclass(frozen=True)
class Resample(Defence):
    """Smaller classes re-drawn with replacement up to the largest, every epoch."""

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(resample=True)


@dataclass(frozen=True)
class LogitAdjust(Defence):
    """The log class prior added to the training logits."""

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return Regime(logit_adjust=log_prior(y_train, num_classes))


@dataclass(frozen=True)
class AdversarialTraining(Defence):
    """Training on images crafted by ``adversarial`` against the current model."""

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """The name, eps and scope (only a model with an under-sampled class, ``targeted``,
        can restrict it to the minority class), and PGD's steps."""
        out = {"name": self.name, "eps": adv_eps, "scope": adv_scope if targeted else "all"}
        return {**out, "steps": adv_steps} if self.adversarial in ("pgd", "trades") else out

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        scope = (target,) if spec["scope"] == "minority" and target is not None else ()
        return Regime(
            adversarial=self.adversarial, adv_eps=spec["eps"], adv_steps=spec.get("steps", 7), adv_classes=scope
        )


@dataclass(frozen=True)
class Trades(AdversarialTraining):
    """TRADES: the clean cross-entropy plus beta times the KL divergence to the model's output
    on a KL-maximising neighbour."""

    beta: float = 6.0

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        return {**super().spec(adv_eps, adv_scope, adv_steps, targeted), "beta": self.beta}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        return dataclasses.replace(super().regime(spec, y_train, num_classes, target), trades_beta=self.beta)


@dataclass(frozen=True)
class Composed(Defence):
    """Defences applied together (``a+b``): each part builds its regime and the regimes are
    merged; at most one part crafts the training images."""

    parts: tuple[Defence, ...] = ()

    @property
    def stackable(self) -> bool:
        return all(p.stackable for p in self.parts)

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        return {"name": self.name, "parts": [p.spec(adv_eps, adv_scope, adv_steps, targeted) for p in self.parts]}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        out: dict[str, Any] = {}
        default = Regime()
        for part, part_spec in zip(self.parts, spec["parts"], strict=True):
            r = part.regime(part_spec, y_train, num_classes, target)
            for f in dataclasses.fields(Regime):
                value = getattr(r, f.name)
                if value != getattr(default, f.name):
                    out[f.name] = value
        return Regime(**out)


def compose(name: str) -> Defence:
    """The defence ``a+b`` from registered parts: each once, at most one adversarial."""
    names = name.split("+")
    parts = tuple(DEFENCES.get(n) for n in names)
    if len(set(names)) != len(names) or len([p for p in parts if p.adversarial]) > 1:
        raise UserError(
            f"defence {name!r}: compose distinct defences with at most one adversarial training "
            "(e.g. pgd_at+logit_adjust, AT-BSL)"
        )
    adversarial = next((p.adversarial for p in parts if p.adversarial), "")
    return Composed(name, " + ".join(p.description for p in parts), adversarial, parts)


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
    AdversarialTraining("fgsm_at", "trained on FGSM images crafted against the current model", "fgsm"),
    AdversarialTraining("pgd_at", "trained on PGD images crafted against the current model", "pgd"),
    AdversarialTraining(
        "fgsm_rs_at", "trained on FGSM images from a random start (fast AT, Wong et al. 2020, step 1.25 eps)", "fgsm_rs"
    ),
    Trades("trades", "TRADES (Zhang et al. 2019): clean CE + 6 KL(f(x) || f(x')), x' maximising the KL", "trades"),
):
    register_defence(_d)


def log_prior(y: torch.Tensor, num_classes: int) -> tuple[float, ...]:
    """log(n_c / N) for every class (an absent class counts as one image, so the offset stays
    finite)."""
    n = torch.bincount(y.cpu(), minlength=num_classes).double().clamp(min=1)
    return tuple(float(v) for v in (n / len(y)).log().tolist())


def balanced_weights(y: torch.Tensor, num_classes: int) -> tuple[float, ...]:
    """N / (C * n_c) for every class c present (scikit-learn's ``balanced``), 0 if absent."""
    n = torch.bincount(y.cpu(), minlength=num_classes).double()
    present = int((n > 0).sum())
    return tuple(float(len(y) / (present * v)) if v > 0 else 0.0 for v in n.tolist())


def epoch_size(y: torch.Tensor, regime: Regime) -> int:
    """How many images :func:`epoch_order` gives per epoch: ``n``, or with ``resample`` the
    largest class's count times the number of classes present."""
    if not regime.resample:
        return len(y)
    counts = torch.bincount(y.cpu())
    return int(counts.max()) * int((counts > 0).sum())


def epoch_order(y: torch.Tensor, regime: Regime, gen: torch.Generator) -> torch.Tensor:
    """Positions into the training set for one epoch, shuffled (CPU tensor). Without
    ``resample`` this is ``randperm(n)`` (the paper's order); with it, every class is topped
    up to the largest class's count by draws with replacement."""
    n = len(y)
    perm = torch.randperm(n, generator=gen)
    if not regime.resample:
        return perm
    y = y.cpu()
    counts = torch.bincount(y)
    top = int(counts.max())
    extra = []
    for c, k in enumerate(counts.tolist()):
        if 0 < k < top:
            members = torch.nonzero(y == c).flatten()
            extra.append(members[torch.randint(0, k, (top - k,), generator=gen)])
    order = torch.cat([perm, *extra])
    return order[torch.randperm(len(order), generator=gen)]


def adversarial_batch(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, regime: Regime, gen: torch.Generator
) -> torch.Tensor:
    """The batch as adversarial training sees it (see :class:`Regime`)."""
    eps = regime.adv_eps
    if regime.adversarial == "fgsm":
        x_adv = fgsm(model, xb, yb, eps=eps)
    elif regime.adversarial == "fgsm_rs":
        start = torch.empty(xb.shape).uniform_(-eps, eps, generator=gen).to(xb.device, xb.dtype)
        x0 = project(xb + start, xb, eps)
        x_adv = project(fgsm(model, x0, yb, eps=1.25 * eps, clip=False), xb, eps)
    elif regime.adversarial == "trades":
        x_adv = trades_neighbour(model, xb, eps, regime.adv_steps, gen)
    else:
        noise = torch.empty(xb.shape).uniform_(-regime.adv_eps, regime.adv_eps, generator=gen)
        x_adv = pgd(
            model, xb, yb, eps=regime.adv_eps, steps=regime.adv_steps, x_init=xb + noise.to(xb.device, xb.dtype)
        )
    if regime.adv_classes:
        mask = torch.isin(yb, torch.tensor(regime.adv_classes, device=yb.device))
        x_adv = torch.where(mask[:, None, None, None], x_adv, xb)
    return x_adv.detach()


def trades_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """TRADES' robust term: KL(softmax(clean) || softmax(adv)) summed over classes, averaged
    over the batch (``KLDivLoss(size_average=False)`` divided by the batch size, as its code)."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="sum") / len(logits_clean)


def trades_loss(
    logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float, adjust: torch.Tensor | None
) -> torch.Tensor:
    """CE(f(x) [+ the logit adjustment], y) + beta * :func:`trades_kl` (the KL on raw logits)."""
    natural = logits_clean if adjust is None else logits_clean + adjust
    return F.cross_entropy(natural, y) + beta * trades_kl(logits_clean, logits_adv)


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
