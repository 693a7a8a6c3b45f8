"""Range checks for numeric command-line options.

argparse's ``type=float`` accepts ``nan`` and ``inf``; passed on, ``--sigma nan`` blanks every
pasted cell and ``--value-range 0 inf`` scores any data as perfect. Every float option goes
through :func:`finite` before use.
"""

from __future__ import annotations

import math

from iaaa.errors import IaaaError

__all__ = ["finite"]


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
