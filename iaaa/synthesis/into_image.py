"""Placing objects into an image that keeps its own cells: into its free space, else on top.

The one rule of ``CellCompositor(onto="image")`` (a real image as the background, its cells and
labels kept) and of :class:`~iaaa.synthesis.paste.PasteCells` (a training sample): objects go
where the image has room (:func:`~iaaa.synthesis.placement.place` on a canvas that holds the
image's cells), and only when not one of them finds room (a confluent field), or when the caller
asks for it, on top of the cells, the covered pixels changing owner, rather than return the image
as it was. Either way the feather stays off the image's cells.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from iaaa.synthesis.canvas import Canvas, empty_table
from iaaa.synthesis.placement import PlacementConfig, PlacementResult, place

__all__ = ["place_into_image"]


def place_into_image(
    image: torch.Tensor,
    level: np.ndarray,
    labels: np.ndarray,
    images: Sequence[torch.Tensor],
    object_labels: Sequence[torch.Tensor],
    class_ids: Sequence[np.ndarray | None],
    config: PlacementConfig,
    generator: torch.Generator,
    density: tuple[np.ndarray, int] | None = None,
    *,
    table: np.ndarray | None = None,
    next_id: int | None = None,
    rim: int = 0,
    touch_share: float | None = None,
    level_range: tuple[np.ndarray, np.ndarray] | None = None,
    on_top: bool = False,
) -> tuple[Canvas, PlacementResult, bool]:
    """Objects placed into an image that keeps its own cells (``labels``, ids below
    ``next_id``; see the module docs): into its free space (``table``: the occupancy table of
    ``labels``, ``None`` computes it), or on top of its cells when ``on_top`` or when not one
    object finds room. Returns ``(canvas, result, placed on top)``; on top, the caller renumbers
    the cells that survive (:func:`~iaaa.synthesis.canvas.surviving_ids`)."""
    args = (images, object_labels, class_ids, config, generator, density)
    if not on_top:
        canvas = Canvas(image, level, labels, config.min_gap, config.border, table, next_id)
        result = place(canvas, *args, rim=rim, touch_share=touch_share, level_range=level_range, guard=True)
        if not images or len(result.placed):
            return canvas, result, False
    h, w = labels.shape
    canvas = Canvas(image, level, labels, config.min_gap, config.border, empty_table(h, w), next_id)
    return canvas, place(canvas, *args, rim=rim, level_range=level_range, guard=True), True
