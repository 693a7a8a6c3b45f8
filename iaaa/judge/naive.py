"""The naive baseline: online Simple Copy-Paste (Ghiasi et al., CVPR 2021), on batches of crops.

As published: the source crop gets its own random scale jitter (log-uniform in ``scale``), a
random mirror and a random shift; a random subset of its cells (each kept with probability
``keep``) is pasted with hard edges onto the destination crop. Pasted cells occlude what lies
under them: occluded pixels of the destination's cells change owner, cells hidden entirely
disappear, pasted cells cut by the frame keep only what is inside. No blending, no location
search, no background cleaning. Labels stay exact: the source's label map moves by an integer
gather (:func:`iaaa.ops.functional.warp_labels`) and pasted ids are shifted above the
destination's ids.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.ops import functional as OF

__all__ = ["copy_paste"]


def _jitter_warp(n: int, size: tuple[int, int], scale: tuple[float, float], generator: torch.Generator) -> OF.Warp:
    """Per sample: zoom about the centre (log-uniform in ``scale``), mirror, shift by up to half
    the crop, as one output -> input affine map."""
    u = torch.rand((n, 4), generator=generator, dtype=torch.float64).numpy()
    s = np.exp(math.log(scale[0]) + u[:, 0] * (math.log(scale[1]) - math.log(scale[0])))
    fx = np.where(u[:, 1] < 0.5, -1.0, 1.0)
    h, w = size
    ty, tx = (u[:, 2] - 0.5) * h, (u[:, 3] - 0.5) * w
    cy, cx = (h - 1) / 2, (w - 1) / 2
    z = np.zeros(n)
    # in = c + diag(fx, 1) (out - c - t) / s
    row_x = np.stack([fx / s, z, cx - fx * (cx + tx) / s], -1)
    row_y = np.stack([z, 1 / s, cy - (cy + ty) / s], -1)
    return OF.Warp(np.stack([row_x, row_y], 1), (h, w), (h, w))


def copy_paste(
    dst_images: torch.Tensor,
    dst_labels: torch.Tensor,
    src_images: torch.Tensor,
    src_labels: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.5, 2.0),
    keep: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste cells of ``src`` crop ``j`` into ``dst`` crop ``j`` (see module docs).

    Args:
        dst_images, src_images: float ``(B, C, H, W)`` crops.
        dst_labels, src_labels: instance label maps ``(B, H, W)``, 0 = background.
        generator: draws the jitter and the subset of pasted cells.
        scale: range of the source's scale jitter.
        keep: probability that a source cell is pasted.

    Returns ``(images, labels)`` of the destination with the cells pasted."""
    if dst_images.shape != src_images.shape or dst_labels.shape != src_labels.shape or dst_images.shape[0] != dst_labels.shape[0]:
        raise IaaaError(f"copy_paste: shapes differ: {tuple(dst_images.shape)}/{tuple(dst_labels.shape)} vs {tuple(src_images.shape)}/{tuple(src_labels.shape)}")
    if not 0 < keep <= 1 or not 0 < scale[0] <= scale[1]:
        raise IaaaError(f"copy_paste: need 0 < keep <= 1 and 0 < scale low <= high, got keep={keep}, scale={scale}")
    b, _, h, w = dst_images.shape
    warp = _jitter_warp(b, (h, w), scale, generator)
    img = OF.warp_image(src_images, warp, "bilinear", 0.0)
    lab = OF.warp_labels(src_labels, warp)
    n_ids = int(src_labels.max()) + 1 if src_labels.numel() else 1
    chosen = torch.rand((b, n_ids), generator=generator) < keep
    chosen[:, 0] = False
    mask = torch.gather(chosen.to(lab.device), 1, lab.reshape(b, -1)).view(b, h, w)
    offset = dst_labels.reshape(b, -1).amax(1).view(b, 1, 1)
    out_img = torch.where(mask[:, None], img, dst_images)
    out_lab = torch.where(mask, lab + offset, dst_labels)
    return out_img, out_lab
