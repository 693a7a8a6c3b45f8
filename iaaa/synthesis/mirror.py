"""Mirror indexing: reading an image past its frame by reflection (edge not repeated), so a
background can be tiled up to any output size and an object crop can reach past the frame."""

from __future__ import annotations

import torch

__all__ = ["reflect_index", "tile"]


def reflect_index(n: int, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    """Indices ``lo..hi-1`` folded into ``0..n-1`` by mirror reflection (edge not repeated)."""
    idx = torch.arange(lo, hi, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    m = idx.remainder(period)
    return torch.where(m >= n, period - m, m)


def tile(image: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Mirror-tile ``image`` ``(C, H, W)`` up to at least ``size`` on both axes (``None`` or a
    smaller size: unchanged), so a background can be cropped to any output size."""
    if size is None:
        return image
    h, w = image.shape[-2:]
    H, W = max(h, size[0]), max(w, size[1])
    if (H, W) == (h, w):
        return image
    return image[:, reflect_index(h, 0, H, image.device)][:, :, reflect_index(w, 0, W, image.device)]
