"""A seeded simulator of annotated microscopy images: the built-in sample data.

The images are meant to exercise everything the library does to real data: irregular cell
shapes, isolated cells (single-cell objects) and touching clusters (multi-cell objects),
cells cut by the image border, uneven illumination and a textured, noisy background.

Image ``i`` of ``simulate_cells(n, seed)`` depends only on ``(seed, i)``, so asking for more
images never changes the earlier ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from iaaa.structures import AnnotatedImage, from_float
from iaaa.errors import IaaaError
from iaaa.filters import gaussian_blur

__all__ = ["simulate_cells", "simulate_image"]

_MODES = ("fluorescence", "brightfield")


def _generator(seed: int, index: int) -> torch.Generator:
    # A 64-bit mix of (seed, index) so neighbouring seeds do not share streams.
    mixed = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def _uniform(g: torch.Generator, lo: float, hi: float, n: int | None = None) -> torch.Tensor | float:
    u = torch.rand(n if n is not None else 1, generator=g, dtype=torch.float64)
    out = lo + (hi - lo) * u
    return out if n is not None else float(out)


def _smooth_noise(g: torch.Generator, h: int, w: int, scale: float) -> torch.Tensor:
    """Zero-mean, unit-std low-frequency noise: white noise at a coarse grid, upsampled bicubically."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    coarse = torch.randn(1, 1, gh, gw, generator=g)
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0, 0]
    return (fine - fine.mean()) / fine.std().clamp_min(1e-6)


def _draw_cells(g: torch.Generator, h: int, w: int, n_cells: int, radius: tuple[float, float], cluster_prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterise ``n_cells`` irregular blobs. Returns ``(labels, depth)`` where ``depth`` in
    [0, 1] is 1 at a cell's centre and 0 at its rim (used for shading).

    Overlapping blobs are split where their normalised radial distances are equal, which gives
    touching cells a shared, plausible boundary instead of one cell swallowing the other."""
    labels = torch.zeros(h, w, dtype=torch.int64)
    best = torch.full((h, w), 1.0)  # normalised radial distance of the owning cell; >= 1 is background
    centres: list[tuple[float, float, float]] = []
    for k in range(1, n_cells + 1):
        r = _uniform(g, *radius)
        placed = False
        if centres and _uniform(g, 0, 1) < cluster_prob:
            # Clustered cell: sits against an existing one, so its blob overlaps a little.
            px, py, pr = centres[int(torch.randint(len(centres), (1,), generator=g))]
            ang = _uniform(g, 0, 2 * math.pi)
            dist = (pr + r) * _uniform(g, 0.75, 0.95)
            cx, cy = px + dist * math.cos(ang), py + dist * math.sin(ang)
            placed = 0 <= cx < w and 0 <= cy < h
        for _ in range(30 if not placed else 0):
            cx, cy = _uniform(g, 0, w), _uniform(g, 0, h)
            if all(math.hypot(cx - x, cy - y) > r + rr + 4 for x, y, rr in centres):
                placed = True
                break
        if not placed:
            continue
        centres.append((cx, cy, r))
        aspect = _uniform(g, 0.65, 1.0)
        theta = _uniform(g, 0, math.pi)
        harmonics = torch.randn(4, generator=g, dtype=torch.float64) * torch.tensor([0.06, 0.05, 0.03, 0.02], dtype=torch.float64)
        phases = torch.rand(4, generator=g, dtype=torch.float64) * 2 * math.pi
        ext = int(math.ceil(r * 1.3)) + 1
        x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
        y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float32) - cy, torch.arange(x0, x1, dtype=torch.float32) - cx, indexing="ij")
        c, s = math.cos(theta), math.sin(theta)
        u, v = c * xx + s * yy, (-s * xx + c * yy) / aspect
        phi = torch.atan2(v, u)
        kk = torch.arange(2, 6, dtype=torch.float32).view(4, 1, 1)
        wobble = 1 + (harmonics.float().view(4, 1, 1) * torch.cos(kk * phi + phases.float().view(4, 1, 1))).sum(0)
        d = torch.sqrt(u * u + v * v) / (r * wobble)
        win_best = best[y0:y1, x0:x1]
        take = d < win_best
        win_best[take] = d[take]
        labels[y0:y1, x0:x1][take] = k
    depth = (1 - best).clamp(0, 1)
    return labels, depth


def simulate_image(
    generator: torch.Generator,
    size: tuple[int, int] = (256, 256),
    mode: str = "fluorescence",
    cells: tuple[int, int] = (12, 30),
    radius: tuple[float, float] = (6.0, 14.0),
    cluster_prob: float = 0.35,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One simulated float image ``(C, H, W)`` in [0, 1] and its label map, from ``generator``."""
    if mode not in _MODES:
        raise IaaaError(f"mode must be one of {_MODES}, got {mode!r}")
    h, w = size
    g = generator
    n_cells = int(torch.randint(cells[0], cells[1] + 1, (1,), generator=g))
    labels, depth = _draw_cells(g, h, w, n_cells, radius, cluster_prob)

    # Per-cell brightness and a lumpy interior (chromatin / nucleoli) make cells differ.
    n_max = int(labels.max())
    cell_gain = torch.cat([torch.zeros(1), 0.55 + 0.45 * torch.rand(n_max, generator=g)])
    texture = _smooth_noise(g, h, w, scale=3.0)
    inside = labels > 0
    shade = depth.sqrt() * (1 + 0.15 * texture)
    cell_signal = torch.where(inside, cell_gain[labels] * shade, torch.zeros(()))
    cell_signal = gaussian_blur(cell_signal, 0.8, 3.0, "reflect")  # optics: edges are never hard

    # Vignetting / uneven lamp: strong in epifluorescence, milder in transmitted light.
    illum_amp = 0.25 if mode == "fluorescence" else 0.1
    illumination = 1 + illum_amp * _smooth_noise(g, h, w, scale=max(h, w) / 1.5)
    bg_texture = _smooth_noise(g, h, w, scale=6.0)

    if mode == "fluorescence":
        background = 0.08 + 0.02 * bg_texture
        clean = (background + 0.75 * cell_signal) * illumination
        # Shot noise grows with the signal; read noise is constant.
        noisy = clean + torch.randn(h, w, generator=g) * (0.012 + 0.03 * clean.clamp_min(0).sqrt())
        image = noisy.clamp(0, 1).unsqueeze(0)
    else:
        background = 0.82 + 0.03 * bg_texture
        rim = gaussian_blur(inside.float(), 1.5, 3.0, "reflect") - inside.float()  # bright halo just outside each cell
        tint_cell = torch.tensor([0.55, 0.35, 0.65]).view(3, 1, 1)  # stained cells absorb green most
        tint_bg = torch.tensor([0.98, 0.93, 0.96]).view(3, 1, 1)
        absorb = cell_signal.unsqueeze(0) * (1 - tint_cell)
        clean = (background.unsqueeze(0) * tint_bg + 0.1 * rim.clamp_min(0).unsqueeze(0)) * (1 - absorb) * illumination.unsqueeze(0)
        noisy = clean + torch.randn(3, h, w, generator=g) * 0.015
        image = noisy.clamp(0, 1)
    return image, labels


def simulate_cells(
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    mode: str = "fluorescence",
    dtype: torch.dtype = torch.uint8,
    cells: tuple[int, int] = (12, 30),
    radius: tuple[float, float] = (6.0, 14.0),
    cluster_prob: float = 0.35,
) -> list[AnnotatedImage]:
    """Simulate ``n`` annotated microscopy-like images.

    Args:
        n: number of images.
        seed: image ``i`` depends only on ``(seed, i)``.
        size: ``(H, W)``.
        mode: ``"fluorescence"`` (1 channel, bright cells on a dark background) or
            ``"brightfield"`` (3 channels, stained cells on a light background with halos).
        dtype: ``torch.uint8``, ``torch.uint16`` (full 16-bit range) or ``torch.float32``.
        cells: inclusive range of cells drawn per image (some may not fit and be skipped).
        radius: range of cell radii in pixels.
        cluster_prob: probability that a cell is placed against an existing one, making
            touching clusters (multi-cell objects).

    Returns:
        A list of :class:`~iaaa.structures.AnnotatedImage` named ``sim_0000`` ... with label
        maps numbered ``1..N`` and one class ("cell").
    """
    if n < 0:
        raise IaaaError(f"n must be >= 0, got {n}")
    if dtype not in (torch.uint8, torch.uint16, torch.float32):
        raise IaaaError(f"dtype must be torch.uint8, torch.uint16 or torch.float32, got {dtype}")
    if len(size) != 2 or min(size) < 16:
        raise IaaaError(f"size must be (H, W) with both >= 16, got {size}")
    out = []
    for i in range(n):
        image, labels = simulate_image(_generator(seed, i), size, mode, cells, radius, cluster_prob)
        sample = AnnotatedImage(from_float(image, dtype), labels, name=f"sim_{i:04d}", meta={"simulator": {"seed": seed, "index": i, "mode": mode}})
        out.append(sample.relabeled())
    return out
