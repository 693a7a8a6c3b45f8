"""How a synthetic image draws from the fitted pools: how many cells it gets
(:func:`draw_count`, :func:`count_cap`) and which objects hold them (:func:`choose_objects`,
:func:`pick_objects`: SCOs and MCOs in the recorded share, no object twice while unused ones
remain), steered by a :class:`CountConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import numpy as np
import torch

from iaaa.synthesis.checks import bounded, check, validate
from iaaa.synthesis.pools import GroupPool, PooledBackground

__all__ = ["COUNTS", "MAX_COUNT", "CountConfig", "CountBasis", "draw_count", "count_cap", "draw_objects", "choose_objects", "pick_objects"]

COUNTS: tuple[str, ...] = ("sample", "mode", "background")
MAX_COUNT = 10_000
"""The most cells a synthetic image may be asked for (a bound, so ``count=1e9`` is refused)."""


@dataclass(frozen=True)
class CountConfig:
    """How many cells a synthetic image gets, and how many of its objects are MCOs (validated
    once, here).

    Attributes:
        count: ``"sample"`` (the count of a random image of the group, scaled by output area /
            source area), ``"background"`` (the drawn background's own image's count, scaled the
            same way), ``"mode"`` (the paper), an int, an inclusive ``(lo, hi)`` range, or a
            callable ``generator -> int``.
        mco_fraction: share of MCOs among the objects drawn: ``"data"`` or a float in [0, 1].
        count_cap: no synthetic image holds more cells than the densest real image of its group
            (scaled by area): objects drawn beyond it are dropped, last first. Default ``False``
            (since stop 37): with ``onto="image"`` the drawn count is added to the real image's
            own cells wherever free space allows, so synthetic images hold up to about twice a
            real image's cells (judged: usiigaci 2 fields +0.035 over ``aug``, 8 runs, +0.007
            over the capped count in the same runs; DSB all 17 +0.023; benchmarks/downstream.md,
            "rule C"). ``True`` keeps every image within its group's real range.
        count_factor: multiplies a count taken from the data (``"sample"``, ``"background"``,
            ``"mode"``; stochastically rounded, before the cap): with ``onto="image"`` and no cap,
            ``count="background", count_factor=0.5`` makes every synthetic image hold about 1.5x
            its own real image's cells, whatever the data's density. Explicit counts are used
            as given.
        repeat_objects: draw objects with replacement, so one image can hold the same object
            twice although unused ones remain (the behaviour before issue 22; the golden cases
            keep it). Default ``False``: an object repeats only once every object of its kind
            is in the image (:func:`pick_objects`).
    """

    count: int | tuple[int, int] | Literal["sample", "mode", "background"] | Callable[[torch.Generator], int] = bounded("sample", 0, MAX_COUNT)
    mco_fraction: float | Literal["data"] = bounded("data", 0.0, 1.0)
    count_cap: bool = False
    count_factor: float = bounded(1.0, 0.0, 100.0)
    repeat_objects: bool = False

    def __post_init__(self) -> None:
        validate(self)
        c = self.count
        check(not isinstance(c, tuple) or c[0] <= c[1], "count", "range must satisfy lo <= hi", c)


class CountBasis(NamedTuple):
    """The image a ``count="background"`` draw scales from when it is not a pooled background
    (:class:`~iaaa.synthesis.paste.PasteCells`: the sample pasted into)."""

    cells: int
    area: float


def draw_count(pool: GroupPool, config: CountConfig, generator: torch.Generator, area: float, background: PooledBackground | CountBasis) -> int:
    """Cells for a synthetic image of ``area`` pixels on ``background`` (its ``cells`` and
    ``area`` are what ``count="background"`` scales; two uniforms drawn whatever the setting, so
    the stream after it does not depend on it)."""
    g = generator
    u = torch.rand(2, generator=g, device=g.device, dtype=torch.float64).tolist()
    c = config.count
    if c == "background":
        x = background.cells * area / background.area
    elif c == "sample":
        i = min(int(u[0] * len(pool.counts)), len(pool.counts) - 1)
        x = pool.counts[i] * area / pool.areas[i]
    elif c == "mode":
        x = pool.mode * area / pool.mode_area
    elif isinstance(c, int):
        return c
    elif isinstance(c, tuple):
        return c[0] + min(int(u[0] * (c[1] - c[0] + 1)), c[1] - c[0])
    else:
        return int(c(g))
    x *= config.count_factor
    # Stochastic rounding keeps the expected count exact when areas differ.
    return int(math.floor(x) + (u[1] < x - math.floor(x)))


def count_cap(pool: GroupPool, area: float) -> int:
    """Most cells a synthetic image of ``area`` pixels may hold: the group's densest real image,
    scaled by area (``CountConfig.count_cap``)."""
    return int(math.floor(float((pool.counts / pool.areas).max()) * area + 1e-9))


def draw_objects(
    pool: GroupPool, config: CountConfig, object_cells: np.ndarray, generator: torch.Generator, area: float,
    background: PooledBackground | CountBasis, real_cells: int | None = None,
) -> tuple[int, list[int]]:
    """``(cells asked, pool indices)`` for one image of ``area`` pixels: :func:`draw_count`,
    the cap, :func:`choose_objects`. ``real_cells``: the image is a real one whose cells stay
    (``onto="image"``, :class:`~iaaa.synthesis.paste.PasteCells`): the count is *added* to them,
    the cap counts them but still leaves room for one object, and a count from the data that
    comes out 0 asks for one cell, since pasting nothing returns the real image verbatim, a
    duplicate rather than a new sample (issue 22). Explicit counts are used as given."""
    n_cells = draw_count(pool, config, generator, area, background)
    if real_cells is not None and n_cells == 0 and isinstance(config.count, str):
        n_cells = 1
    cap = count_cap(pool, area) if config.count_cap else None
    if cap is not None and real_cells is not None:
        cap = max(1, cap - real_cells)
    return n_cells, choose_objects(pool, config, object_cells, n_cells, generator, cap)


def choose_objects(
    pool: GroupPool, config: CountConfig, object_cells: np.ndarray, n_cells: int, generator: torch.Generator, cap: int | None = None,
) -> list[int]:
    """Pool indices of objects holding ``n_cells`` cells on average, MCOs in the recorded share.

    The number of objects is ``n_cells / (mean cells per object)`` (stochastically rounded)
    and each object's kind is an independent draw, so both the expected cell count and the
    MCO share are exact; stopping at the count instead biases one of them (an MCO near the
    end overshoots, or gets swapped for an SCO and lowers the share). ``cap``: objects that would
    take the total past this many cells are dropped, last first (no randomness is consumed).

    No object is drawn twice while its kind's pool has unused ones (:func:`pick_objects`), and
    a positive ``n_cells`` never gives an empty draw: when rounding (or the cap) leaves no
    object, one SCO (else MCO) that fits under ``cap`` is drawn; with a cap of at least one
    cell and no SCO in the pool, the drawn MCO with the fewest cells, over the cap."""
    g = generator
    q = _mco_share(pool, config)
    mean_mco = float(object_cells[pool.mco].mean()) if len(pool.mco) else 2.0
    per_object = (1 - q) + q * mean_mco
    x = max(n_cells, 0) / per_object
    r = float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))
    m = int(math.floor(x) + (r < x - math.floor(x)))
    if n_cells > 0 and m == 0 and len(pool.sco) + len(pool.mco) > 0:
        m = 1
    chosen = np.asarray(pick_objects(pool, config, m, g), dtype=np.int64)
    if cap is not None and len(chosen):
        kept = chosen[np.cumsum(object_cells[chosen]) <= cap]
        if not len(kept):
            # The cap leaves room for fewer cells than the drawn first object holds: the
            # first drawn object that fits, so a draw that asked for cells is not empty.
            fits = chosen[object_cells[chosen] <= cap]
            if not len(fits) and len(pool.sco) and cap >= 1:
                # Every drawn object was an MCO too large for the room left: one SCO instead,
                # indexed by the count's uniform (no extra draw).
                fits = pool.sco[min(int(r * len(pool.sco)), len(pool.sco) - 1) :][:1]
            if not len(fits) and cap >= 1:
                # No SCO at all (a pool of sheet parts, a confluent field): the drawn object
                # with the fewest cells, over the cap rather than an empty draw.
                fits = chosen[[int(np.argmin(object_cells[chosen]))]]
            kept = fits[:1]
        chosen = kept
    return chosen.tolist()


def _mco_share(pool: GroupPool, config: CountConfig) -> float:
    q = pool.mco_fraction if config.mco_fraction == "data" else float(config.mco_fraction)
    if len(pool.mco) == 0:
        return 0.0
    if len(pool.sco) == 0:
        return 1.0
    return q


def pick_objects(pool: GroupPool, config: CountConfig, m: int, generator: torch.Generator) -> list[int]:
    """``m`` pool indices, each an MCO with the group's (or ``config.mco_fraction``'s) share, else
    an SCO, uniform within its kind and (unless ``config.repeat_objects``) without repeats while
    that kind has unused objects.

    Draws ``(m, 2)`` uniforms whatever the pool. A repeat is replaced by the next unused object
    of its kind (in pool order, wrapping), so draws without repeats are exactly the
    with-replacement draws, and a kind whose pool is smaller than its share of ``m`` repeats
    objects only once all of them are used."""
    g = generator
    q = _mco_share(pool, config)
    u = torch.rand((m, 2), generator=g, device=g.device, dtype=torch.float64).cpu().numpy()
    if config.repeat_objects:
        is_mco = u[:, 0] < q
        n_s, n_m = len(pool.sco), len(pool.mco)
        pick_m = pool.mco[np.minimum((u[:, 1] * n_m).astype(np.int64), max(n_m - 1, 0))] if n_m else np.zeros(m, np.int64)
        pick_s = pool.sco[np.minimum((u[:, 1] * n_s).astype(np.int64), max(n_s - 1, 0))] if n_s else np.zeros(m, np.int64)
        return np.where(is_mco, pick_m, pick_s).tolist()
    out: list[int] = []
    used: dict[bool, set[int]] = {False: set(), True: set()}
    for is_mco, v in zip((u[:, 0] < q).tolist(), u[:, 1].tolist()):
        kind = pool.mco if is_mco else pool.sco
        n = len(kind)
        if n == 0:
            continue
        k = min(int(v * n), n - 1)
        seen = used[is_mco]
        if len(seen) >= n:
            seen.clear()  # every object of this kind is in the image: start a second round
        while k in seen:
            k = (k + 1) % n
        seen.add(k)
        out.append(int(kind[k]))
    return out
