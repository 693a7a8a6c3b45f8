"""Type and range checks for the fields of the SAAA configs.

The configs are rebuilt from hand-editable files (``saaa.json``, the ``config`` of each weights
file, checkpoints), so every field is checked for its type and its bounds *before* anything is
allocated from it: a string where a number belongs, a bool posing as an int, ``1e9`` timesteps or
a ``2**20`` px canvas each stop at one line naming the field. The upper bounds are the largest
values the networks can use on one machine, not taste: they keep a typo from allocating
terabytes.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from iaaa.errors import IaaaError

__all__ = ["integer", "number", "flag", "choice", "MAX_TRAIN_SIZE", "MAX_SAMPLE_SIZE", "MAX_WIDTH", "MAX_BATCH", "MAX_CROPS_PER_IMAGE", "MAX_CROP_BYTES"]

#: Largest training crop side (px): a 1024 px crop already holds hundreds of cells.
MAX_TRAIN_SIZE = 1024
#: Largest sampled canvas side (px): both networks attend over all positions of their coarsest
#: level, and at 2048 px the Pix2Pix attention matrix alone is 1 GB.
MAX_SAMPLE_SIZE = 2048
#: Largest channel width of any network level.
MAX_WIDTH = 2048
#: Largest training batch.
MAX_BATCH = 256
#: Most random crops per training image.
MAX_CROPS_PER_IMAGE = 10_000
#: Largest pool of training crops (images, mask channels and labels together), in bytes.
MAX_CROP_BYTES = 4 << 30


def _fail(name: str, rule: str, value: Any) -> IaaaError:
    shown = repr(value) if not isinstance(value, (list, dict)) else f"a {type(value).__name__}"
    return IaaaError(f"{name}: {rule}, got {shown}")


def integer(value: Any, name: str, lo: int, hi: int) -> int:
    """``value`` if it is an ``int`` (not a bool or float) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be an integer in [{lo}, {hi}]", value)
    if not lo <= value <= hi:
        raise _fail(name, f"must be in [{lo}, {hi}]", value)
    return value


def number(value: Any, name: str, lo: float, hi: float) -> float:
    """``value`` as float if it is a finite real number (int or float, not bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(name, f"must be a finite number in [{lo:g}, {hi:g}]", value)
    if not lo <= value <= hi:
        raise _fail(name, f"must be in [{lo:g}, {hi:g}]", value)
    return float(value)


def flag(value: Any, name: str) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise _fail(name, "must be true or false", value)
    return value


def choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise _fail(name, f"must be one of {', '.join(map(repr, choices))}", value)
    return value
