"""Data regimes: which training images each fold uses, and how sure a paired difference is.

Fold ``k`` of ``n`` training images with ``limit`` images per fold takes the ``limit`` images
starting at ``k * limit`` (modulo ``n``) of the sorted list: folds are disjoint as long as
``folds * limit <= n`` and rotate through all images otherwise, so every image is used about
equally often. Where that rotation would come back to an earlier fold's images (12 images, 4
folds of 4: fold 3 would be fold 0 again, a duplicate run counted twice in every paired mean),
fold ``k`` starts at ``floor(k * n / folds)`` instead: distinct, overlapping folds, each image
still used about equally often. Every fold is scored on the same held-out test images.
"""

from __future__ import annotations

import math
from typing import Sequence

from iaaa.errors import IaaaError

__all__ = ["fold_subsets", "paired_interval"]


def fold_subsets(n: int, limit: int | None, folds: int = 1) -> list[list[int]]:
    """Indices of the training images of each fold (see module docs); ``limit`` ``None`` or
    ``>= n``: one fold with every image."""
    if n < 1:
        raise IaaaError("train_limit: no training images")
    if limit is None or limit >= n:
        if folds > 1:
            raise IaaaError(f"folds: {folds} folds of {limit} images from {n} training images would all be the same")
        return [list(range(n))]
    if folds > n:
        raise IaaaError(f"folds: {folds} folds of {limit} images from {n} training images; at most {n} differ")
    starts = [k * limit % n for k in range(folds)]
    if len(set(starts)) < folds:
        starts = [k * n // folds for k in range(folds)]
    return [sorted((start + j) % n for j in range(limit)) for start in starts]


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student t interval of the mean of paired differences (one per
    fold and seed). With fewer than two differences the interval is ``(nan, nan)``."""
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(diffs) / n
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
