"""Checks of command-line options.

argparse's ``type=float`` accepts ``nan`` and ``inf``; passed on, ``--sigma nan`` blanks every
pasted cell and ``--value-range 0 inf`` scores any data as perfect. Every float option goes
through :func:`finite` before use.

An option that only matters beside another one (``--image-size`` with ``--tile 0``) defaults to
``None``, so a command can tell it was given and refuse it where nothing reads it instead of
ignoring it; :func:`fill_defaults` then sets the ones not given.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from iaaa.errors import IaaaError

__all__ = ["finite", "fill_defaults"]


def finite(flag: str, value: float | None, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float | None:
    """``value`` if it is a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), else
    an :class:`IaaaError` naming ``flag``. ``None`` (option not given) passes through."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise IaaaError(f"{flag}: must be a finite number, got {value}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise IaaaError(f"{flag}: must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise IaaaError(f"{flag}: must be <= {hi:g}, got {value:g}")
    return value


def fill_defaults(args: Any, defaults: Mapping[str, Any]) -> list[str]:
    """Set each option ``defaults`` names (by attribute) that was not given (``None``) to its
    default; returns the attributes that were given, in ``defaults`` order."""
    given = [name for name in defaults if getattr(args, name) is not None]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return given
