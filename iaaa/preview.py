"""Pictures of annotated images for people: instance outlines / fills in distinct colours and
contact sheets, as 8-bit RGB."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from iaaa.data.imageio import write_image
from iaaa.structures import as_annotated, to_float
from iaaa.errors import IaaaError

__all__ = ["display_limits", "display_image", "overlay_instances", "contact_sheet", "save_preview"]


def display_limits(image: torch.Tensor, percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    """The ``(lo, hi)`` float intensities :func:`display_image` stretches between."""
    flat = to_float(image).reshape(-1)
    if flat.numel() > 1_000_000:  # quantiles of a subsample are enough for display
        flat = flat[:: flat.numel() // 1_000_000 + 1]
    lo, hi = torch.quantile(flat.float(), torch.tensor([percentiles[0] / 100, percentiles[1] / 100]))
    return float(lo), float(hi)


def display_image(image: torch.Tensor, percentiles: tuple[float, float] = (0.5, 99.5), limits: tuple[float, float] | None = None) -> torch.Tensor:
    """Float RGB ``(3, H, W)`` in [0, 1] for viewing: 1 channel is grey, 3 channels RGB, other
    counts show the first three (or first, repeated). Each image is stretched between the given
    percentiles so dim 16-bit fluorescence is visible, or between ``limits`` (to show two
    images on one scale)."""
    x = to_float(image)
    if x.shape[0] >= 3:
        x = x[:3]
    else:
        x = x[:1].expand(3, -1, -1)
    lo, hi = limits if limits is not None else display_limits(x, percentiles)
    return ((x - lo) / max(hi - lo, 1e-6)).clamp(0, 1)


def _palette(n: int) -> torch.Tensor:
    # Golden-angle hues give neighbouring ids clearly different colours.
    h = (torch.arange(n, dtype=torch.float32) * 0.618034) % 1.0
    k = (torch.tensor([5.0, 3.0, 1.0]).view(1, 3) + h.view(-1, 1) * 6) % 6
    rgb = 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return 0.35 + 0.65 * rgb


def overlay_instances(sample: Any, mode: str = "outline", alpha: float = 0.35) -> torch.Tensor:
    """RGB uint8 ``(3, H, W)``: the image with each instance's outline (``mode="outline"``) or a
    translucent fill plus outline (``mode="fill"``) in its own colour."""
    s = as_annotated(sample)
    img = display_image(s.image)
    labels = s.labels
    n = int(labels.max()) if labels.numel() else 0
    colours = torch.cat([torch.zeros(1, 3), _palette(n)]).T  # (3, n+1)
    col = colours[:, labels]
    inside = (labels > 0).unsqueeze(0)
    if mode == "fill":
        img = torch.where(inside, (1 - alpha) * img + alpha * col, img)
    elif mode != "outline":
        raise IaaaError(f"mode must be 'outline' or 'fill', got {mode!r}")
    lab = labels.float()[None, None]
    # A pixel is on an outline when its 3x3 neighbourhood holds another label.
    mx = F.max_pool2d(lab, 3, 1, 1)
    mn = -F.max_pool2d(-lab, 3, 1, 1)
    edge = ((mx != lab) | (mn != lab))[0] & inside
    img = torch.where(edge, col, img)
    return (img * 255).round().to(torch.uint8)


def contact_sheet(rows: Sequence[Sequence[torch.Tensor]], pad: int = 4, cell: int | None = None) -> torch.Tensor:
    """Tile RGB uint8 ``(3, H, W)`` pictures into rows; each picture is scaled to a common
    height ``cell`` (default: the largest height) and padded with white."""
    pics = [p for r in rows for p in r]
    if not pics:
        raise IaaaError("contact_sheet needs at least one picture")
    cell = cell or max(p.shape[1] for p in pics)
    rendered = []
    for r in rows:
        scaled = []
        for p in r:
            w = max(1, round(p.shape[2] * cell / p.shape[1]))
            q = F.interpolate(p[None].float(), size=(cell, w), mode="nearest")[0] if p.shape[1] != cell else p.float()
            scaled.append(F.pad(q, (pad, pad, pad, pad), value=255))
        rendered.append(torch.cat(scaled, 2))
    width = max(r.shape[2] for r in rendered)
    rendered = [F.pad(r, (0, width - r.shape[2]), value=255) for r in rendered]
    return torch.cat(rendered, 1).round().to(torch.uint8)


def save_preview(path: str | os.PathLike, real: Sequence[Any], synthetic: Sequence[Any] = (), n: int = 4, backgrounds: Sequence[torch.Tensor] = ()) -> Path:
    """Write a PNG contact sheet: a row of real images with outlines, then (if given) a row of
    cell-free backgrounds (images ``(C, H, W)``), then a row of synthetic images with outlines."""
    real = list(real)[:n]
    rows = [[overlay_instances(s) for s in real]]
    if backgrounds:
        # On the scale of the image it came from, so the removal is judged by what it changed.
        rows.append([(display_image(b, limits=display_limits(as_annotated(s).image)) * 255).round().to(torch.uint8) for b, s in zip(backgrounds, real)])
    if synthetic:
        rows.append([overlay_instances(s) for s in list(synthetic)[:n]])
    return write_image(path, contact_sheet(rows))
