"""A model's identity: which training set it is trained on and how (:class:`Scenario`, its
:class:`Kind`), and whose gradient crafts the images it is attacked with (:class:`Gradient`).
One identity per concept: a scenario is a ``Scenario`` everywhere inside advimb, parsed from its
name (:func:`parse_scenario`) where a name comes in (the CLI, the config, ``advimb.load_model``,
the artifacts' reader) and named (:meth:`Scenario.name`, :meth:`Scenario.slug`) only where an
artifact is written. A leaf above ``config``: it imports only the errors, the config's enum
type and the layout's file-name rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from advimb.config.enums import Choice
from advimb.errors import UserError
from advimb.layout import slug


class Kind(Choice):
    """How a scenario's training set is drawn (:class:`Scenario`)."""

    BALANCED = "balanced"
    UNDER = "under"
    OVER = "over"
    LONGTAIL = "longtail"
    COUNTS = "counts"


class Gradient(Choice):
    """Whose gradient crafts the images a model is attacked with: its own (``same_model``, a
    white-box attack) or the balanced model's (the paper's "different model", a transfer
    attack). Its value is the grid artifacts' word; the long-tail tables call the second
    ``balanced_model``, their papers' word (:attr:`Gradient.longtail_label`)."""

    SAME = "same_model"
    BALANCED = "different_model"

    @property
    def longtail_label(self) -> str:
        return "same_model" if self is Gradient.SAME else "balanced_model"


#: the paper grid's kinds of model
KINDS = (Kind.BALANCED, Kind.UNDER, Kind.OVER)


@dataclass(frozen=True, order=True)
class Scenario:
    """A training set (and how it is trained).

    ``kind``: ``balanced``, ``under`` or ``over`` with a ``target`` class index (None for
    balanced), ``longtail`` with a ``profile`` (``exp`` or ``step``) and ``rho``, or
    ``counts`` with the ``label`` of a count vector of ``imbalance.scenarios``. ``count`` (> 0): the target class's training count, overriding the paper's (imbalance
    sweeps). ``defence``: a training-time defence (``advimb.training.defences``), "" for none.
    """

    kind: Kind
    target: int | None = None
    count: int = 0
    profile: str = ""
    rho: float = 0.0
    defence: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        # a kind given as its string (Scenario("under", 3)) is stored as the enum member
        object.__setattr__(self, "kind", Kind(self.kind))

    def name(self, classes: tuple[str, ...]) -> str:
        """Canonical name, e.g. ``under:cat``, ``under:cat@250``, ``longtail:exp10``,
        ``under:cat+pgd_at``."""
        if self.kind == "longtail":
            base = f"longtail:{self.profile}{self.rho:g}"
        elif self.kind == "counts":
            base = f"counts:{self.label}"
        else:
            base = self.kind if self.target is None else f"{self.kind}:{classes[self.target]}"
        if self.count:
            base += f"@{self.count}"
        return base + (f"+{self.defence}" if self.defence else "")

    def slug(self, classes: tuple[str, ...]) -> str:
        """File-system-safe name, e.g. ``under-cat``, ``under-cat@250``, ``under-cat+pgd_at``."""
        return slug(self.name(classes))

    @property
    def plain(self) -> bool:
        """One of the paper's 21 scenarios (no count override, no defence, not long-tailed)."""
        return self.kind in KINDS and not self.count and not self.defence


#: the balanced model of the paper's grid
BALANCED = Scenario(Kind.BALANCED)


def parse_class(text: str | int, classes: tuple[str, ...]) -> int:
    """A class given by name (``cat``) or index (``3``) -> index."""
    s = str(text).strip()
    if s in classes:
        return classes.index(s)
    if s.lstrip("-").isdigit():
        i = int(s)
        if 0 <= i < len(classes):
            return i
        raise UserError(
            f"class index {i} is out of range: this dataset has {len(classes)} classes (0-{len(classes) - 1})"
        )
    raise UserError(f"unknown class {s!r}; classes are: {', '.join(classes)}")


def parse_scenario(text: str, classes: tuple[str, ...]) -> Scenario:
    """A scenario from its name: ``balanced``, ``under:<class>``, ``over:<class>`` (class by
    name or index), ``longtail:exp10`` / ``longtail:step10``, with an optional count
    (``under:cat@250``) and defence (``under:cat+pgd_at``)."""
    text = text.strip()
    body, _, defence = text.partition("+")
    if defence and not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", defence):
        raise UserError(f"scenario {text!r}: {defence!r} is not a defence name")
    body, _, count = body.partition("@")
    if count and not count.isdigit():
        raise UserError(f"scenario {text!r}: the count after @ must be a positive integer")
    n = int(count) if count else 0
    kind, _, cls = body.partition(":")
    if kind == "longtail":
        m = re.fullmatch(r"([A-Za-z_]+)([0-9.]+)", cls)
        if not m:
            raise UserError(f"scenario {text!r}: use longtail:<profile><rho>, e.g. longtail:exp10")
        return Scenario(Kind.LONGTAIL, profile=m.group(1), rho=float(m.group(2)), count=n, defence=defence)
    if kind == "counts":
        if n:
            raise UserError(f"scenario {text!r}: a counts:<name> scenario has its own counts; drop the @{n}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", cls):
            raise UserError(f"scenario {text!r}: use counts:<name> (imbalance.scenarios)")
        return Scenario(Kind.COUNTS, label=cls, count=n, defence=defence)
    if kind not in KINDS:
        raise UserError(f"unknown scenario {text!r}; use balanced, under:<class> or over:<class>")
    if kind == "balanced":
        if cls:
            raise UserError(f"scenario {text!r}: balanced takes no class")
        return Scenario(Kind.BALANCED, count=n, defence=defence)
    if not cls:
        raise UserError(f"scenario {text!r} needs a class, e.g. {kind}:cat or {kind}:3")
    return Scenario(Kind(kind), parse_class(cls, classes), count=n, defence=defence)
