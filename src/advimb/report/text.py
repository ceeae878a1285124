"""Numbers as the report writes them: one decimal, ``n/a`` for an undefined value, an
estimate as ``value [lo, hi]``. A leaf of the report package."""

from __future__ import annotations

from typing import Any


def fmt(x: Any, digits: int = 1, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def ci(d: dict[str, Any] | None, unit: str = "%") -> str:
    """``value [lo, hi]`` of an estimate dict, ``n/a`` when not measured."""
    if not d:
        return "n/a"
    if d.get("value") is None:
        return "n/a"
    ci = "" if d.get("lo") is None else f" [{fmt(d['lo'])}, {fmt(d['hi'])}]"
    return f"{fmt(d['value'])}{unit}{ci}"
