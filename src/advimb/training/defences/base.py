"""What a training-time defence is: the declarations it makes (:class:`Regime`), the objects
that carry them (:class:`TrainingImages`: which images a batch is replaced by or joined with;
:class:`Loss`: the training loss; :class:`Head`: a classifier head in place of the model's
last linear layer; a test-time correction, :class:`Corrected`), and how defences compose (:class:`Composed`: each field of
the regime declared by at most one part, a conflict refused in one line before anything is
written). The trainers read a regime's declarations and never a defence's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advimb.errors import UserError


@dataclass(frozen=True)
class TrainingImages:
    """The images adversarial training crafts from a batch against the current model (in eval
    mode), with eps ``eps``, only for the images whose label is in ``classes`` when that is
    given (the others stay clean). ``keeps_clean``: the loss sees the clean batch and these
    images together (TRADES), else these replace the batch. ``stepped``: the attack takes
    ``experiments.adv_steps`` steps (part of the defence's job key)."""

    eps: float
    classes: tuple[int, ...] = ()
    keeps_clean: ClassVar[bool] = False
    stepped: ClassVar[bool] = False

    @classmethod
    def from_spec(cls, eps: float, steps: int, classes: tuple[int, ...]) -> TrainingImages:
        return cls(eps, classes)

    def craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The batch ``x`` as the training step sees it (detached), random starts from ``gen``."""
        x_adv = self._craft(model, x, y, gen)
        if self.classes:
            mask = torch.isin(y, torch.tensor(self.classes, device=y.device))
            x_adv = torch.where(mask[:, None, None, None], x_adv, x)
        return x_adv.detach()

    def _craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError  # a bug: every kind of training images overrides it


@dataclass(frozen=True)
class Loss:
    """A training loss on a batch's logits: ``weight`` (per-class weights, Keras
    ``class_weight``: each image's loss times its class's weight, averaged over the batch) and
    ``adjust`` (per-class offsets added to the training logits) are the other declarations a
    loss receives, each ``None`` when no defence declares it; ``logits_adv``: the logits of the
    :class:`TrainingImages` that keep the clean batch (``None`` otherwise)."""

    def __call__(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor | None,
        adjust: torch.Tensor | None,
        logits_adv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError  # a bug: every loss overrides it


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, adjust: torch.Tensor | None
) -> torch.Tensor:
    """CE(logits [+ adjust], y), each image's term times ``weight[y]`` when given, averaged over
    the batch (Keras ``class_weight``, not torch's weighted mean)."""
    z = logits if adjust is None else logits + adjust
    if weight is None:
        return F.cross_entropy(z, y)
    return (F.cross_entropy(z, y, reduction="none") * weight[y]).mean()


@dataclass(frozen=True)
class CrossEntropy(Loss):
    """The paper's loss (:func:`cross_entropy`), on the batch the training images left."""

    def __call__(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor | None,
        adjust: torch.Tensor | None,
        logits_adv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return cross_entropy(logits, y, weight, adjust)


@dataclass(frozen=True)
class Head:
    """A classifier head a defence puts in place of the model's last ``nn.Linear`` (RoBal's
    cosine classifier, say): :meth:`Head.build` makes its module from that layer's input width."""

    def build(self, in_features: int, num_classes: int) -> nn.Module:
        raise NotImplementedError  # a bug: every head overrides it


def attach_head(model: nn.Module, head: Head, num_classes: int, seed: int = 0) -> nn.Module:
    """``model`` with its last ``nn.Linear`` (in module order) replaced by ``head``'s module,
    initialised from ``seed`` (torch's global generator is left as it was). Every registered
    model ends in one; a one-line error for a model that does not."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise UserError(
            f"a defence with its own classifier head needs a model whose classifier is an nn.Linear; "
            f"{type(model).__name__} has none"
        )
    parent_name, _, attr = last[-1].rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    layer = getattr(parent, attr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        setattr(parent, attr, head.build(layer.in_features, num_classes).to(layer.weight.device))
    return model


@dataclass(frozen=True)
class Correction:
    """A test-time correction of the logits: ``scale * logits + offsets`` (RoBal-N's
    ``10 * cos - 0.1 * log(prior)``; a post-hoc prior correction has scale 1)."""

    offsets: tuple[float, ...]
    scale: float = 1.0


class Corrected(nn.Module):
    """A model with its test-time :class:`Correction` (buffers ``scale`` and ``offsets``, saved
    with the weights) applied to its logits. The trainer trains the bare model; the study
    evaluates and attacks this one, and ``advimb.load_model`` returns it."""

    def __init__(self, model: nn.Module, num_classes: int, correction: Correction | None = None) -> None:
        super().__init__()
        c = correction or Correction((0.0,) * num_classes)
        self.model = model
        self.register_buffer("scale", torch.tensor(c.scale, dtype=torch.float32))
        self.register_buffer("offsets", torch.tensor(c.offsets, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.model(x) + self.offsets

    @staticmethod
    def saved(state: dict[str, torch.Tensor], correction: Correction) -> dict[str, torch.Tensor]:
        """The state dict of a :class:`Corrected` around a bare model's ``state`` (what its
        weights file holds)."""
        return {
            **{f"model.{k}": v for k, v in state.items()},
            "scale": torch.tensor(correction.scale, dtype=torch.float32),
            "offsets": torch.tensor(correction.offsets, dtype=torch.float32),
        }


@dataclass(frozen=True)
class Regime:
    """How a model is trained beyond the optimiser: the declarations of its defences (the
    default is the paper's plain training). Each field is declared by at most one defence.

    ``class_weight``: per-class loss weights (given to the loss). ``logit_adjust``: per-class
    offsets added to the logits in the training loss only (the logit-adjusted loss of Menon et
    al. 2021 with tau = 1: log of the class's share of the training set, which is the balanced
    softmax of Ren et al. 2020); predictions use the raw logits. ``resample``: every epoch, each
    class with fewer images than the largest is topped up to it by drawing its images again
    with replacement (fresh draws each epoch). ``images``: what adversarial training crafts
    from each batch (:class:`TrainingImages`). ``loss``: the training loss (:class:`Loss`;
    cross-entropy by default). ``head``: the classifier head the model trains and is evaluated
    with (:class:`Head`). ``correction``: what the logits become at test time only
    (:class:`Correction`, applied by :class:`Corrected`).
    """

    class_weight: tuple[float, ...] = ()
    logit_adjust: tuple[float, ...] = ()
    resample: bool = False
    images: TrainingImages | None = None
    loss: Loss = CrossEntropy()
    head: Head | None = None
    correction: Correction | None = None

    @property
    def adversarial(self) -> bool:
        """Does it craft its training images against the current model?"""
        return self.images is not None

    def record(self) -> dict[str, Any]:
        """The regime as a model's meta.json holds it: its weights and offsets, and its images
        and loss each named by kind with their settings."""

        def named(obj: Any) -> dict[str, Any]:
            return {"kind": type(obj).__name__, **dataclasses.asdict(obj)}

        return {
            "class_weight": list(self.class_weight),
            "logit_adjust": list(self.logit_adjust),
            "resample": self.resample,
            "images": None if self.images is None else named(self.images),
            "loss": named(self.loss),
            "head": None if self.head is None else named(self.head),
            "correction": None if self.correction is None else named(self.correction),
        }


@dataclass(frozen=True)
class Defence:
    """A training-time defence: what defines it for a model's job key (:meth:`Defence.spec`),
    the :class:`Regime` fields it declares (``declares``, checked when defences compose) and
    the regime it trains a model with (:meth:`Defence.regime`, each kind of defence its own)."""

    name: str
    description: str = ""
    declares: ClassVar[frozenset[str]] = frozenset()

    @property
    def fields(self) -> frozenset[str]:
        """The :class:`Regime` fields this defence sets."""
        return self.declares

    @property
    def adversarial(self) -> bool:
        """Does it craft its training images (and so also defend the balanced model)?"""
        return "images" in self.fields

    @property
    def stackable(self) -> bool:
        """Can its models train in the study's one stack? Weights, offsets and re-sampling
        change only the cross-entropy and the epoch's order; crafted images and other losses
        need the model's own step, so they train one by one; so do another head and a
        test-time correction (the model's own structure)."""
        return not self.fields & {"images", "loss", "head", "correction"}

    def head(self) -> Head:
        """The classifier head of a defence that declares ``head``."""
        raise NotImplementedError(f"defence {self.name!r} declares no head")  # a bug

    def evaluated(self, model: nn.Module, num_classes: int) -> nn.Module:
        """``model`` (freshly built) in the structure this defence's models are saved and
        evaluated in, before their weights are loaded: with its head and its test-time
        correction where it declares them."""
        if "head" in self.fields:
            model = attach_head(model, self.head(), num_classes)
        if "correction" in self.fields:
            model = Corrected(model, num_classes)
        return model

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        """What defines this defence for a model (part of its job key); the experiments'
        adversarial-training settings matter only to adversarial training."""
        return {"name": self.name}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        """The training regime of a model with this defence (its ``spec`` from :meth:`Defence.spec`)."""
        raise NotImplementedError(f"defence {self.name!r} builds no regime")  # a bug: every kind overrides it


@dataclass(frozen=True)
class Composed(Defence):
    """Defences applied together (``a+b``): each part builds its regime and the regimes are
    merged field by field; no two parts declare the same field (:func:`advimb.training.defences.compose` refuses them)."""

    parts: tuple[Defence, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset().union(*(p.fields for p in self.parts))

    def head(self) -> Head:
        return next(p for p in self.parts if "head" in p.fields).head()

    def spec(self, adv_eps: float, adv_scope: str, adv_steps: int, targeted: bool) -> dict[str, Any]:
        return {"name": self.name, "parts": [p.spec(adv_eps, adv_scope, adv_steps, targeted) for p in self.parts]}

    def regime(self, spec: dict[str, Any], y_train: torch.Tensor, num_classes: int, target: int | None) -> Regime:
        out: dict[str, Any] = {}
        for part, part_spec in zip(self.parts, spec["parts"], strict=True):
            r = part.regime(part_spec, y_train, num_classes, target)
            out.update({f: getattr(r, f) for f in part.fields})
        return Regime(**out)


def composed(name: str, parts: tuple[Defence, ...]) -> Composed:
    """The defence ``a+b+...`` of ``parts``: each once, no field of the regime declared twice
    (two adversarial trainings both craft the images; TRADES and another loss both set it)."""
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise UserError(f"defence {name!r}: name each defence once (e.g. pgd_at+logit_adjust, AT-BSL)")
    seen: dict[str, str] = {}
    for p in parts:
        for f in sorted(p.fields):
            if f in seen:
                raise UserError(
                    f"defence {name!r}: {seen[f]} and {p.name} both set the training {f}; compose defences "
                    "that change different things (e.g. pgd_at+logit_adjust, AT-BSL)"
                )
            seen[f] = p.name
    return Composed(name, " + ".join(p.description for p in parts), parts)
