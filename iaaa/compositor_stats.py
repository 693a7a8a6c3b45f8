"""What :meth:`iaaa.CellCompositor.fit` records: the statistics of the data (cells per image,
SCO/MCO counts and share) and, per group of images, the pools a synthetic image draws from."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["CompositorStats", "PooledObject"]


class PooledObject(NamedTuple):
    """A cell object in the compositor's pool, ready to paste."""

    image: torch.Tensor
    """float32 ``(C, h, w)`` in ``[0, 1]`` on the compositor's device, with its context ring."""
    labels: torch.Tensor
    """int64 ``(h, w)``, cells ``1..k``."""
    class_ids: np.ndarray
    """``(k,)`` class id of each cell."""
    kind: str
    """``"sco"`` or ``"mco"``."""
    source: str
    """name of the source image."""
    box: tuple[int, int, int, int]
    """XYXY of the crop in the source image."""
    num_cells: int


@dataclass
class CompositorStats:
    """What :meth:`CellCompositor.fit` saw.

    Attributes:
        n_images: images fitted.
        cells_per_image: cells (instances of at least ``min_area`` pixels, border cells
            included) in each image.
        image_sizes: ``(H, W)`` of each image.
        n_sco, n_mco: objects in the pools (border objects excluded unless ``keep_border``).
        cells_in_mcos: cells held by the MCO pool.
        n_border_objects: objects left out because they touch the border.
        n_fragments: instances below ``min_area`` (never pasted).
        n_backgrounds: backgrounds in the pool.
        no_background: names of images with no background pixel (left out of the pool).
        fit_seconds: wall time of ``fit``.
    """

    n_images: int = 0
    cells_per_image: list[int] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    n_sco: int = 0
    n_mco: int = 0
    cells_in_mcos: int = 0
    n_border_objects: int = 0
    n_fragments: int = 0
    n_backgrounds: int = 0
    no_background: list[str] = field(default_factory=list)
    fit_seconds: float = 0.0

    @property
    def mco_fraction(self) -> float:
        """Share of MCOs among the pooled objects (the paper's SCO/MCO ratio, as a fraction)."""
        n = self.n_sco + self.n_mco
        return self.n_mco / n if n else 0.0

    @property
    def sco_mco_ratio(self) -> float:
        """SCOs per MCO in the pool (``inf`` without MCOs)."""
        return self.n_sco / self.n_mco if self.n_mco else math.inf

    @property
    def mean_cells(self) -> float:
        return float(np.mean(self.cells_per_image)) if self.cells_per_image else 0.0

    @property
    def mode_cells(self) -> int:
        """Most common cell count (the smallest one on ties)."""
        if not self.cells_per_image:
            return 0
        return _mode(self.cells_per_image)

    def summary(self) -> str:
        return (
            f"{self.n_images} images, cells/image mean {self.mean_cells:.1f} mode {self.mode_cells}; "
            f"{self.n_sco} SCOs, {self.n_mco} MCOs ({self.cells_in_mcos} cells), MCO share {self.mco_fraction:.3f}; "
            f"{self.n_border_objects} border objects and {self.n_fragments} fragments left out; "
            f"{self.n_backgrounds} backgrounds; fit {self.fit_seconds:.1f} s"
        )


@dataclass
class _Pool:
    """Objects and count statistics of one group of fitted images."""

    sco: np.ndarray
    mco: np.ndarray
    counts: np.ndarray
    areas: np.ndarray
    mco_fraction: float
    mode: int
    mode_area: float


def _mode(values: list[int]) -> int:
    c = Counter(values)
    top = max(c.values())
    return min(k for k, v in c.items() if v == top)
