"""Config values in and out: dataclasses from (partial) nested dicts with every value
checked, deep merges, ``--set KEY=VALUE`` parsing, TOML files. Imports only ``advimb.errors``.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Union

from advimb.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def to_dict(cfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, dict):
            out[f.name] = dict(v)
        elif isinstance(v, tuple):
            out[f.name] = [to_dict(x) if dataclasses.is_dataclass(x) else x for x in v]
        else:
            out[f.name] = v
    return out


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if tp is dict or origin is dict:  # a free table (an outside attack's arguments): TOML scalars and lists
        if not isinstance(value, dict):
            raise UserError(f"config {key}: expected a table of settings, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config {key}: expected a table of settings, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin is tuple:
        (elem,) = typing.get_args(tp)[:1]
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config {key}: expected a list, got {value!r}")
        return tuple(_coerce(v, elem, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"config {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise UserError(f"config {key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise UserError(f"config {key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise UserError(f"config {key}: expected a number, got {value!r}")
        try:
            return _number(value)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"config {key}: expected a number (or a fraction such as 8/255), got {value!r}") from None
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise UserError(f"config {key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")  # a bug, not user input


def _number(value: float | str) -> float:
    """A number, or a fraction written ``a/b`` (``8/255``, the long-tail papers' eps)."""
    if isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        return float(num) / float(den)
    return float(value)


def from_dict(cls: type, d: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) nested dict; unknown keys fail."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        where = f"[{prefix[:-1]}]" if prefix else "the top level"
        raise UserError(f"unknown config key {prefix}{unknown[0]!s}; known keys in {where}: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in d.items()}
    return cls(**kwargs)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (tables merge, values replace)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_assignment(text: str) -> dict[str, Any]:
    """``train.max_epochs=5`` -> ``{"train": {"max_epochs": 5}}`` (value parsed as TOML,
    falling back to a plain string)."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.max_epochs=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return nest(key, value)


def nest(key: str, value: Any) -> dict[str, Any]:
    """``("train.max_epochs", 5)`` -> ``{"train": {"max_epochs": 5}}``."""
    d: Any = value
    for part in reversed(key.split(".")):
        d = {part: d}
    return d


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file {p} is not valid TOML: {e}") from None
    except OSError as e:
        raise UserError(f"cannot read config file {p}: {e.strerror}") from None


def dump_toml(cfg: Any) -> str:
    """A config dataclass as TOML (``None`` values left out)."""
    import tomli_w

    def drop_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(drop_none(cfg.to_dict()))
