"""One-line checks for the stage configs: each raises an :class:`~iaaa.errors.IaaaError` naming
the option, the rule and the value, so a config validates every field in one line."""

from __future__ import annotations

from typing import Any, Sequence

from iaaa.errors import IaaaError

__all__ = ["check", "one_of"]


def check(ok: bool, name: str, rule: str, value: Any) -> None:
    """Raise ``IaaaError("<name>: <rule>, got <value>")`` unless ``ok``."""
    if not ok:
        raise IaaaError(f"{name}: {rule}, got {value!r}")


def one_of(value: Any, name: str, choices: Sequence[Any]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    check(isinstance(value, str) and value in choices, name, f"must be one of {tuple(choices)}", value)
