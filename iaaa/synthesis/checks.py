"""One-line checks for the synthesis configs: each raises an :class:`~iaaa.errors.IaaaError` naming
the option, the rule and the value.

Every config field declares its type (``typing.Literal`` for choices) and, for numbers, its
bounds in the field's metadata (``bounded(default, lo, hi)``); :func:`validate` checks both from
there, so every entry point (Python, JSON, the command line) gets the same bounds, and
:func:`parse_text` turns a command-line string into the field's type with one clear line.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from typing import Any, Callable, Literal, Sequence, get_args, get_origin

from iaaa.errors import IaaaError

__all__ = ["check", "one_of", "bounded", "validate", "describe", "coerce", "parse_text", "field_hints"]


def check(ok: bool, name: str, rule: str, value: Any) -> None:
    """Raise ``IaaaError("<name>: <rule>, got <value>")`` unless ``ok``."""
    if not ok:
        raise IaaaError(f"{name}: {rule}, got {value!r}")


def one_of(value: Any, name: str, choices: Sequence[Any]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    check(isinstance(value, str) and value in choices, name, f"must be one of {tuple(choices)}", value)


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field whose numbers (and each number of a tuple) must lie in ``[lo, hi]``."""
    return dataclasses.field(default=default, metadata={"bounds": (lo, hi)})


_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved type of every field of the dataclass ``cls``."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _members(hint: Any) -> list[Any]:
    if get_origin(hint) in (typing.Union, types.UnionType):
        return [m for a in get_args(hint) for m in _members(a)]
    return [hint]


def _is_callable_hint(m: Any) -> bool:
    return m is Callable or get_origin(m) is collections.abc.Callable


def describe(hint: Any) -> str:
    """What a field of type ``hint`` accepts, in words (``"'auto' or an integer"``)."""
    words = []
    for m in _members(hint):
        if m is type(None):
            words.append("none")
        elif m is bool:
            words.append("true or false")
        elif get_origin(m) is Literal:
            words.append(" or ".join(repr(a) for a in get_args(m)))
        elif m is int:
            words.append("an integer")
        elif m is float:
            words.append("a number")
        elif get_origin(m) is tuple:
            inner = get_args(m)[0]
            words.append("a pair of integers" if inner is int else "a pair of numbers")
        elif _is_callable_hint(m):
            words.append("a callable")
        elif m is str:
            words.append("a string")
        else:
            words.append(getattr(m, "__name__", str(m)))
    return " or ".join(words)


def _number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, float))
    return isinstance(value, (int, float)) or (hasattr(value, "__float__") and not isinstance(value, str))


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as a member of ``hint`` (lists become tuples, numpy scalars plain numbers), or
    an :class:`IaaaError` naming ``name`` and what it expects."""
    for m in _members(hint):
        if m is type(None) and value is None:
            return None
        if m is bool and isinstance(value, bool):
            return value
        if get_origin(m) is Literal and isinstance(value, str) and value in get_args(m):
            return value
        if m is int and _number(value, True):
            return int(value)
        if m is float and _number(value, False):
            v = float(value)
            if not math.isfinite(v):
                raise IaaaError(f"{name}: expected a finite number, got {value!r}")
            return v
        if get_origin(m) is tuple and isinstance(value, (tuple, list)) and len(value) == 2:
            inner = get_args(m)[0]
            if all(_number(v, inner is int) for v in value):
                out = tuple(inner(v) for v in value)
                if inner is float and not all(math.isfinite(v) for v in out):
                    raise IaaaError(f"{name}: expected finite numbers, got {value!r}")
                return out
        if _is_callable_hint(m) and callable(value) and not isinstance(value, (str, type)):
            return value
        if m is str and isinstance(value, str):
            return value
    raise IaaaError(f"{name}: expected {describe(hint)}, got {value!r}")


def _in_bounds(name: str, value: Any, bounds: tuple[float | None, float | None]) -> None:
    lo, hi = bounds
    numbers = value if isinstance(value, tuple) else (value,)
    for v in numbers:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rule = f"must be in [{lo}, {hi}]" if lo is not None and hi is not None else (f"must be >= {lo}" if lo is not None else f"must be <= {hi}")
            raise IaaaError(f"{name}: {rule}, got {value!r}")


def validate(config: Any) -> None:
    """Check (and normalise, on a frozen dataclass too) every field of ``config`` against its
    type and bounds; the first bad one raises one line naming it."""
    hints = field_hints(type(config))
    for f in dataclasses.fields(config):
        if not f.init or dataclasses.is_dataclass(getattr(config, f.name)):
            continue
        value = coerce(f.name, getattr(config, f.name), hints[f.name])
        if "bounds" in f.metadata:
            _in_bounds(f.name, value, f.metadata["bounds"])
        object.__setattr__(config, f.name, value)


_TRUE, _FALSE, _NONE = ("true", "yes", "on"), ("false", "no", "off"), ("none", "null")


def parse_text(name: str, text: str, hint: Any) -> Any:
    """A command-line string as a value of ``hint`` (``"2"``, ``"true"``, ``"none"``,
    ``"144,176"``, ``"6-12"``, ``"'auto'"``); an :class:`IaaaError` naming ``name`` otherwise."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        t = t[1:-1]
    for m in _members(hint):
        if m is type(None) and t.lower() in _NONE:
            return None
        if m is bool and t.lower() in _TRUE + _FALSE:
            return t.lower() in _TRUE
        if get_origin(m) is Literal and t in get_args(m):
            return t
        if m is int:
            try:
                return int(t)
            except ValueError:
                pass
        if m is float:
            try:
                v = float(t)
            except ValueError:
                continue
            if math.isfinite(v):
                return v
            raise IaaaError(f"{name}: expected a finite number, got {text!r}")
        if get_origin(m) is tuple:
            inner = get_args(m)[0]
            parts = [p for p in t.strip("()[]").replace("x", ",").replace(" ", ",").split(",") if p]
            if len(parts) == 1 and inner is int and "-" in parts[0][1:]:
                parts = parts[0].split("-", 1)
            if len(parts) == 2:
                try:
                    out = tuple(inner(p) for p in parts)
                except ValueError:
                    continue
                if all(math.isfinite(v) for v in out):
                    return out
        if m is str:
            return t
    raise IaaaError(f"{name}: expected {describe(hint)}, got {text!r}")
