"""The texture/window engine shared by background filling and inpainting.

Both ways of removing cells (:mod:`iaaa.synthesis.background`, box fills, and
:mod:`iaaa.synthesis.inpaint`, mask holes) rebuild a region from real background pixels in two
parts, and both parts live here, once:

**Level** (:func:`local_level`, :func:`background_level`): the smooth background brightness.
:func:`local_level` is a Gaussian normalised convolution (``blur(x * w) / blur(w)``) over the
pixels where a weight is true, optionally computed on a ``factor``-times downsampled grid (a wide
blur would otherwise dominate the cost on large images). :func:`background_level` builds the
inpainting level on it: refitted without outliers (debris, specks: more than 2.5 robust standard
deviations off, which belong to the texture) and continued into the holes by the membrane
(harmonic) interpolation, solved coarse-to-fine on a pyramid (cascadic multigrid: each level
starts from the coarser solution and takes a few Jacobi steps), so illumination gradients carry
through large holes without flattening and a level exists even when 95 % of the field is holes.

**Windows** (:func:`box_sum`, :func:`usable_windows`): texture is copied in whole square windows
that lie entirely in the source pixels, so the background's spatially correlated noise stays
correlated. The window side starts at a requested size and halves while fewer than
``min_windows`` such windows exist (dense fields). Window sums at every position are read from
an integral image (one cumulative sum, then four reads per window), not from a stride-1
``avg_pool2d``, whose cost grows with the window's area and dominated fitting large fields.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from iaaa.errors import IaaaError
from iaaa.filters import gaussian_blur

__all__ = ["box_sum", "box_mean", "box_means_at", "integral_image", "selection_quantile", "usable_windows", "local_level", "background_level"]

_OUTLIER = 2.5  # robust sds beyond which a reference pixel does not shape the level
_RELAX_STEPS = 24  # Jacobi steps per pyramid level (see _relax)
_SPARSE_SHARE = 0.2  # free share of a level below which _relax gathers only the free pixels


def box_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sums of every ``k x k`` window of ``x`` ``(..., H, W)`` at stride 1: ``(..., H-k+1, W-k+1)``.

    Integer inputs are summed exactly in int64, bool inputs (window counts) exactly in int32
    while a plane has fewer than 2^31 pixels (half the memory traffic of int64: these counts run
    over every full-size field in fitting); floating inputs in float64 and returned in their own
    dtype (so the sums do not depend on ``k`` through rounding).
    """
    h, w = x.shape[-2:]
    if not 1 <= k <= min(h, w):
        raise IaaaError(f"k: window side must be in [1, {min(h, w)}] for a {h}x{w} input, got {k}")
    s = integral_image(x)
    out = s[..., k:, k:] - s[..., :-k, k:] - s[..., k:, :-k] + s[..., :-k, :-k]
    return out if not x.dtype.is_floating_point else out.to(x.dtype)


def integral_image(x: torch.Tensor) -> torch.Tensor:
    """Integral image of ``x`` ``(..., H, W)`` with a zero first row and column, ``(..., H + 1,
    W + 1)``: a window's sum is four corner reads. In the accumulator :func:`box_sum` describes
    (int32 for bool counts, int64 for integers, float64 for floats)."""
    h, w = x.shape[-2:]
    counts = x.dtype == torch.bool and h * w < 1 << 31
    dtype = torch.int32 if counts else torch.float64 if x.dtype.is_floating_point else torch.int64
    if x.device.type != "cpu" or x.dtype == torch.bfloat16:  # (NumPy has no bfloat16)
        acc = x.to(dtype)
        return F.pad(acc.cumsum(-1, dtype=dtype).cumsum(-2, dtype=dtype), (1, 0, 1, 0))
    # On the CPU NumPy's running sums (the same sequential additions, so the same values) write
    # straight into the padded result, the second in place: half the time of torch's two
    # cumsums, conversion and pad (fit builds several per full-size field).
    out = torch.zeros(*x.shape[:-2], h + 1, w + 1, dtype=dtype)
    inner = out.numpy()[..., 1:, 1:]
    np.cumsum(x.detach().numpy(), -1, dtype=inner.dtype, out=inner)
    np.cumsum(inner, -2, out=inner)
    return out


def box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Means of every ``k x k`` window of float ``x`` ``(..., H, W)`` at stride 1 (see :func:`box_sum`)."""
    return box_sum(x, k) / float(k * k)


def box_means_at(integral: torch.Tensor, k: int, y: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``box_mean(v, k)[:, y, x]`` in ``dtype`` of a float ``v`` ``(C, H, W)`` from its
    :func:`integral_image`, moved to ``(..., C)``: the same four reads and the same rounding, for
    a few windows among many (what a full ``box_mean`` would compute for every one)."""
    s = integral[:, y + k, x + k] - integral[:, y, x + k] - integral[:, y + k, x] + integral[:, y, x]
    return (s.to(dtype) / float(k * k)).movedim(0, -1)


def selection_quantile(values: torch.Tensor, q: float, interpolation: str = "linear") -> torch.Tensor:
    """``torch.quantile(values.double(), q, interpolation=interpolation)`` (``"linear"``: between
    the two order statistics around ``q (n - 1)``; ``"lower"``: the lower one, which at ``q =
    0.5`` is ``torch.median``'s value), float64, the same value, from a partial sort on the CPU:
    the order statistics by selection instead of sorting a value per pixel or window of a
    full-size field (torch's median of a 1 Mpx field took 12 ms, selection 1 ms). Other
    devices sort there."""
    if interpolation not in ("linear", "lower"):
        raise IaaaError(f"interpolation must be 'linear' or 'lower', got {interpolation!r}")
    if values.device.type != "cpu":
        return torch.quantile(values.double(), q, interpolation=interpolation)
    v = values.detach().double().numpy().reshape(-1)
    pos = q * (v.size - 1)
    lo = math.floor(pos)
    hi = math.ceil(pos) if interpolation == "linear" else lo
    part = np.partition(v, [lo, hi])
    a, b = torch.tensor(part[lo], dtype=torch.float64), torch.tensor(part[hi], dtype=torch.float64)
    return torch.lerp(a, b, torch.tensor(pos - lo if hi > lo else 0.0, dtype=torch.float64))


def usable_windows(
    source: torch.Tensor, start: int, min_windows: int, side: Callable[[int], int] = lambda k: k, lowest: int = 1,
) -> tuple[int, torch.Tensor | None]:
    """The largest stride ``k`` (``start``, halved down to ``lowest``) at which at least
    ``min_windows`` windows of side ``side(k)`` lie entirely in ``source`` ``(H, W)`` bool.

    Returns ``(k, ok)`` with ``ok`` the bool ``(H - s + 1, W - s + 1)`` map of such windows'
    top-left corners, or ``(0, None)`` when even ``k = lowest`` has too few.
    """
    h, w = source.shape
    k = int(start)
    while k >= lowest:
        s = side(k)
        if s <= min(h, w):
            ok = box_sum(source, s) == s * s
            if int(ok.sum()) >= min_windows:
                return k, ok
        k //= 2
    return 0, None


def local_level(x: torch.Tensor, weight: torch.Tensor, sigma: float, factor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian normalised convolution of ``x`` ``(C, H, W)`` float over the pixels where ``weight``
    ``(H, W)`` is true (or weighs, if float): ``(level (C, H, W), support (H, W))``, ``support``
    being the blurred weight.

    ``factor > 1`` computes it on a ``factor``-times average-pooled grid and upsamples
    bilinearly, when the image is at least ``8 * factor`` pixels and ``sigma >= factor`` (a
    level is smooth at that scale, and a wide blur would dominate the cost of large images).
    """
    f = factor if min(x.shape[-2:]) >= 8 * factor and sigma >= factor else 1
    w = weight.to(x.dtype)[None]
    num, den = (x * w), w
    if f > 1:
        num = F.avg_pool2d(num[None], f, ceil_mode=True)[0]
        den = F.avg_pool2d(den[None], f, ceil_mode=True)[0]
    num = gaussian_blur(num, sigma / f, 3.0, "reflect")
    den = gaussian_blur(den, sigma / f, 3.0, "reflect")
    if f > 1:
        size = tuple(x.shape[-2:])
        num = F.interpolate(num[None], size=size, mode="bilinear", align_corners=False)[0]
        den = F.interpolate(den[None], size=size, mode="bilinear", align_corners=False)[0]
    return num / den.clamp_min(1e-12), den[0]


def background_level(x: torch.Tensor, weight: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """Smooth level of ``x`` ``(C, H, W)`` float from the pixels where ``weight`` ``(H, W)`` is true.

    On those pixels: :func:`local_level` at scale ``sigma``, refitted without outliers. Elsewhere:
    the membrane (harmonic) interpolation of those values, solved coarse-to-fine (module docs).

    Raises:
        IaaaError: ``weight`` has no true pixel.
    """
    if not bool(weight.any()):
        raise IaaaError("weight: no reference pixel to estimate the background level from")
    w = weight.to(x.dtype)[None]
    # Full resolution: on a 2x pooled grid (a quarter of a sparse field's fit) the judge read
    # -0.009 mean AP on DSB against a floor of -0.005 (benchmarks/downstream.md, stop 47).
    est, den = local_level(x, weight, sigma)
    # Outliers (debris, specks) are texture, not level: a dark speck on a hole's edge would
    # otherwise radiate into the membrane. Refit without pixels beyond `_OUTLIER` robust sds.
    dev = (x - est).abs().amax(0)
    ref = dev[weight]
    sd = 1.4826 * float(selection_quantile(ref, 0.5, "lower")) if ref.numel() else 0.0
    if sd > 0:
        wi = weight & (dev <= _OUTLIER * sd)
        est_i, den_i = local_level(x, wi, sigma)
        est = torch.where(den_i > 0.1 * den, est_i, est)
    # Pyramid of (value sum, weight) over the fixed pixels, halving until one pixel is left.
    pyr = [(est * w, w)]
    while min(pyr[-1][1].shape[-2:]) > 2:
        v, m = pyr[-1]
        pyr.append((F.avg_pool2d(v[None], 2, ceil_mode=True)[0], F.avg_pool2d(m[None], 2, ceil_mode=True)[0]))
    v, m = pyr[-1]
    mean = v.sum((-2, -1), keepdim=True) / m.sum()
    level = torch.where(m > 0, v / m.clamp_min(1e-12), mean)
    for s in range(len(pyr) - 2, -1, -1):
        v, m = pyr[s]
        level = F.interpolate(level[None], size=tuple(m.shape[-2:]), mode="bilinear", align_corners=False)[0]
        fixed = m[0] > (0.5 if s == 0 else 0.0)
        level = torch.where(fixed, v / m.clamp_min(1e-12), level)
        level = _relax(level, fixed, _RELAX_STEPS if s > 0 else 2 * _RELAX_STEPS)
    return level


def _relax(level: torch.Tensor, fixed: torch.Tensor, steps: int) -> torch.Tensor:
    """Jacobi steps of the Laplace equation on the pixels that are not ``fixed``: the membrane
    interpolation continues a linear illumination gradient through a hole instead of flattening
    it. Started from the coarser level's solution, a few steps per level remove the upsampling
    error (cascadic multigrid); pixels of a level with any reference pixel below are fixed to
    their mean, which the finer levels correct."""
    free = ~fixed
    if not bool(free.any()) or min(level.shape[-2:]) < 2:
        return level
    c, h, w = level.shape
    n_free = int(free.sum())
    if n_free <= _SPARSE_SHARE * h * w:
        return _relax_sparse(level, free, n_free, steps)
    # One padded buffer and one sum buffer for all steps: each step is then five memory passes
    # over the image, with no allocation (this loop ran 48 times over every full-size field).
    p = torch.empty(c, h + 2, w + 2, dtype=level.dtype, device=level.device)
    nb = torch.empty_like(level)
    inner = p[:, 1:-1, 1:-1]
    inner.copy_(level)
    for _ in range(steps):
        # Replicate padding, as F.pad(mode="replicate"): edge rows, then edge columns with corners.
        p[:, 0, 1:-1] = p[:, 1, 1:-1]
        p[:, -1, 1:-1] = p[:, -2, 1:-1]
        p[:, :, 0] = p[:, :, 1]
        p[:, :, -1] = p[:, :, -2]
        torch.add(p[:, :-2, 1:-1], p[:, 2:, 1:-1], out=nb)
        nb.add_(p[:, 1:-1, :-2]).add_(p[:, 1:-1, 2:]).mul_(0.25)
        torch.where(free, nb, inner, out=nb)
        inner.copy_(nb)
    return inner.contiguous()


def _relax_sparse(level: torch.Tensor, free: torch.Tensor, n_free: int, steps: int) -> torch.Tensor:
    """:func:`_relax` touching only the free pixels: four gathers of their neighbours and one
    scatter per step. Same additions in the same order, so the same bits; on sparse holes
    (nuclei, whole fluorescence cells: a few % of the field) about 6x faster than passes over
    the full image, slower beyond about a quarter of it (hence ``_SPARSE_SHARE``)."""
    c, h, w = level.shape
    idx = torch.nonzero(free.reshape(-1)).flatten()
    y, x = idx // w, idx % w
    row = y * w
    # Clamped neighbours are the replicate padding of the dense path.
    up = y.sub(1).clamp_min_(0).mul_(w).add_(x)
    down = y.add(1).clamp_max_(h - 1).mul_(w).add_(x)
    left = x.sub(1).clamp_min_(0).add_(row)
    right = x.add(1).clamp_max_(w - 1).add_(row)
    flat = level.reshape(c, h * w).clone()
    nb = torch.empty(c, n_free, dtype=level.dtype, device=level.device)
    tmp = torch.empty_like(nb)
    for _ in range(steps):
        # Jacobi: every gather reads the previous step's values before the one scatter.
        torch.index_select(flat, 1, up, out=nb)
        nb.add_(torch.index_select(flat, 1, down, out=tmp))
        nb.add_(torch.index_select(flat, 1, left, out=tmp))
        nb.add_(torch.index_select(flat, 1, right, out=tmp))
        nb.mul_(0.25)
        flat.index_copy_(1, idx, nb)
    return flat.view(c, h, w)
