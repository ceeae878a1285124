"""Numbers as the report writes them: one decimal, ``n/a`` for an undefined value, an
estimate as ``value [lo, hi]``, a claim's magnitude agreement as one line. A leaf of the report package."""

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


def magnitude_text(claim: dict[str, Any], digits: int = 1) -> str:
    """One line: each quantity this run vs the paper's, inside or outside the interval."""
    if not claim["magnitude"]:
        return claim.get("magnitude_note") or "no paper value"
    parts = []
    for x in claim["magnitude"]:
        e = x["this_run"]
        name = x["quantity"].replace("_percent", "").replace("_accuracy", "").replace("_", " ")
        if e["value"] is None or e["value"] != e["value"]:
            parts.append(f"{name} undefined in this run vs paper {x['paper']:g}%")
            continue
        ci = f" [{e['lo']:.{digits}f}, {e['hi']:.{digits}f}]" if x["inside"] is not None else " (no interval)"
        where = {True: " (inside)", False: " (outside)", None: ""}[x["inside"]]
        parts.append(f"{name} {e['value']:.{digits}f}%{ci} vs paper {x['paper']:g}%{where}")
    return "; ".join(parts)
