"""The checks every config section runs on its values: one-line errors that name the key."""

from __future__ import annotations

from typing import Any

from advimb.config.enums import Choice
from advimb.errors import UserError


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise UserError(f"config {key}: {msg}")


def _enum(section: Any, name: str, enum: type[Choice], key: str) -> None:
    """Convert field ``name`` of a frozen section to its enum (a one-line error otherwise)."""
    object.__setattr__(section, name, enum.parse(getattr(section, name), key))
