"""The closed sets of the config, as enums converted at the boundary (``sections``' checks).

Each member is also its string (``Direction.ASCENT == "ascent"``), so JSON, TOML, job keys
and comparisons see exactly the strings they saw before; what changes is that an unknown
value fails when the config is built, with the choices in the message. The open sets
(models, attacks, datasets, defences, long-tail profiles) are registries in their stages.
"""

from __future__ import annotations

from enum import Enum

from advimb.errors import UserError


class Choice(str, Enum):
    """A string enum whose members print, format and compare as their value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)

    def __hash__(self) -> int:
        # equal to its string, so hashed as it: a member and its string find the same dict entry
        return hash(self.value)

    @classmethod
    def parse(cls, value: object, key: str) -> Choice:
        try:
            return cls(value)
        except ValueError:
            raise UserError(f"config {key}: {value!r} is not one of {', '.join(m.value for m in cls)}") from None


class Selection(Choice):
    RANDOM = "random"
    FIRST = "first"


class Normalize(Choice):
    NONE = "none"
    PER_CHANNEL = "per_channel"


class Init(Choice):
    KERAS = "keras"
    TORCH = "torch"


class Validation(Choice):
    SPLIT = "split"
    BALANCED = "balanced"
    TEST = "test"
    UNUSED = "unused"


class Augment(Choice):
    NONE = "none"
    HFLIP = "hflip"
    HFLIP_EXCEPT_OVER = "hflip_except_over"
    CROP = "crop"
    CROP_HFLIP = "crop_hflip"


class Optimizer(Choice):
    RMSPROP_KERAS = "rmsprop_keras"
    SGD = "sgd"


class Schedule(Choice):
    NONE = "none"
    PIECEWISE = "piecewise"
    COSINE = "cosine"


class Select(Choice):
    """Which epoch's weights a model keeps (``train.restore_best``): the lowest validation
    loss, or the highest robust accuracy on the validation images."""

    VAL_LOSS = "val_loss"
    VAL_ROBUST = "val_robust"


class Precision(Choice):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


class Auto(Choice):
    """A speed switch that ``auto`` leaves to the hardware (resolved once, before a run)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class Direction(Choice):
    ASCENT = "ascent"
    DESCENT = "descent"


class SignZero(Choice):
    TORCH = "torch"
    PLUS = "plus"


class AdvScope(Choice):
    ALL = "all"
    MINORITY = "minority"


class ExecutorName(Choice):
    LOCAL = "local"
    DASK = "dask"


class Resources(Choice):
    AUTO = "auto"
    NONE = "none"
