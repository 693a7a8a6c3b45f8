"""Gaussian filtering: the one home of the truncated Gaussian used to feather pasted objects and
filled backgrounds, to smooth images for corner matching and cell layouts, to low-pass images in
the ``Smooth`` op and before downscaling (:func:`antialias_sigma`), and to soften simulated cells.

Two conventions, both truncated at ``ceil(truncate * sigma)`` pixels:

* :func:`gaussian_blur` — one ``sigma`` for a float tensor ``(..., H, W)``, zero, replicated or
  reflected borders; zero padding makes the result exactly 0 farther than
  :func:`feather_radius` from every non-zero pixel, which feathering relies on.
  :func:`blur_small` is the same zero-padded filter for cell-sized crops, and
  :func:`feather_mask` turns a binary mask into an alpha in ``[0, 1]``.
* :func:`gaussian_blur_batch` — a per-sample ``sigma`` for a batch ``(B, C, H, W)`` with
  replicated borders (the ``Smooth`` op, Resize's antialiasing).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from iaaa.errors import IaaaError
from iaaa.threads import serial_kernel

__all__ = ["PADDINGS", "antialias_sigma", "feather_radius", "gaussian_kernel", "gaussian_blur", "blur_small", "feather_mask", "gaussian_blur_batch"]

# torch padding name -> scipy.ndimage mode (torch's "reflect" does not repeat the edge: "mirror").
_SCIPY_MODES = {"zeros": "constant", "replicate": "nearest", "reflect": "mirror"}
PADDINGS = tuple(_SCIPY_MODES)


def feather_radius(sigma: float, truncate: float = 3.0) -> int:
    """Support radius (pixels) of the truncated Gaussian used for feathering: alpha is exactly 0
    farther than this (Chebyshev distance) from the blurred mask."""
    if sigma < 0 or truncate <= 0:
        raise IaaaError(f"sigma must be >= 0 and truncate > 0, got sigma={sigma}, truncate={truncate}")
    return int(math.ceil(truncate * sigma)) if sigma > 0 else 0


def antialias_sigma(scale: Any) -> Any:
    """Gaussian sigma (input pixels) to low-pass an image before resampling it by ``scale``
    (a float or an array of them): ``(1/s - 1) / 2`` (skimage's choice) where it reaches 0.25 px
    (``s <= 2/3``), else 0: below that the kernel's side taps weigh under 0.04 % and bilinear
    sampling's own two-tap average already suppresses aliasing."""
    sigma = (1.0 / scale - 1.0) / 2.0
    if isinstance(sigma, np.ndarray):
        return np.where(sigma >= 0.25, sigma, 0.0)
    return float(sigma) if sigma >= 0.25 else 0.0


@functools.lru_cache(maxsize=64)
def gaussian_kernel(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1-D float32 taps of radius :func:`feather_radius` (cached; do not modify)."""
    r = feather_radius(sigma, truncate)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(torch.float32)


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0, padding: str = "zeros") -> torch.Tensor:
    """Separable truncated Gaussian blur of a float tensor ``(..., H, W)`` on its own device.

    ``padding="zeros"`` treats the outside as 0 (what feathering an object mask needs: the result
    is exactly 0 farther than :func:`feather_radius` from any non-zero pixel); ``"replicate"``
    extends the edge (a mask that reaches the frame stays fully on there, and the zero property
    still holds); ``"reflect"`` mirrors the edge (what smoothing an image needs).
    ``sigma == 0`` returns ``x`` unchanged."""
    if sigma == 0:
        return x
    if not x.dtype.is_floating_point:
        raise TypeError(f"gaussian_blur: expected a float tensor, got {x.dtype}")
    if x.ndim < 2:
        raise IaaaError(f"gaussian_blur: expected (..., H, W), got shape {tuple(x.shape)}")
    if padding not in _SCIPY_MODES:
        raise IaaaError(f"padding must be 'zeros', 'replicate' or 'reflect', got {padding!r}")
    r = feather_radius(sigma, truncate)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        a = x.detach().contiguous().numpy()
        k = gaussian_kernel(float(sigma), float(truncate)).numpy().astype(a.dtype)
        h, w = a.shape[-2:]
        if a.dtype == np.float32 and h * w >= _SHIFTED_FROM and r < min(h, w):
            return torch.from_numpy(_blur_by_shifted_sums(a, k, padding))
        # On the CPU, scipy's 1-D correlation is several times faster than torch's conv2d for
        # these thin kernels; same weights, same boundary rule, same values up to rounding.
        import scipy.ndimage as ndi

        mode = _SCIPY_MODES[padding]
        y = ndi.correlate1d(ndi.correlate1d(a, k, axis=-1, mode=mode, cval=0.0), k, axis=-2, mode=mode, cval=0.0)
        return torch.from_numpy(y)
    k = gaussian_kernel(float(sigma), float(truncate)).to(device=x.device, dtype=x.dtype)
    h, w = x.shape[-2:]
    y = x.reshape(-1, 1, h, w)
    if padding == "zeros":
        y = F.conv2d(y, k.view(1, 1, 1, -1), padding=(0, r))
        y = F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))
    else:
        # reflect needs pad < size; replicate is the closest fallback for tiny inputs.
        mode_w = "reflect" if padding == "reflect" and r < w else "replicate"
        mode_h = "reflect" if padding == "reflect" and r < h else "replicate"
        y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode_w), k.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode_h), k.view(1, 1, -1, 1))
    return y.reshape(x.shape)


# Planes of at least this many pixels are blurred by shifted sums (below it scipy's per-line
# loop is cheaper than numpy's per-call overhead): measured 1.5-2.7x faster from 128x128 up,
# 0.4-0.8x below 96x96 (benchmarks/README.md, "gaussian_blur").
_SHIFTED_FROM = 128 * 128
_NUMPY_PADS = {"zeros": "constant", "replicate": "edge", "reflect": "reflect"}
# Floats per row block of the shifted-sums blur (256 KiB: a block and its temporaries stay in L2).
_BLOCK_FLOATS = 1 << 16


def _blur_by_shifted_sums(a: np.ndarray, k: np.ndarray, padding: str) -> np.ndarray:
    """The separable blur of float32 ``a`` ``(..., H, W)`` (kernel radius below ``H`` and ``W``)
    as sums of shifted planes: the symmetric taps pair up, so each pass is ``r + 1`` whole-row
    products instead of scipy's per-line loop over strided columns. Both passes run over blocks
    of rows small enough to stay in cache (``_BLOCK_FLOATS``): the ``2r + 1`` sweeps per block
    then read cache, not memory (1.3-1.6x on 1024 px planes, same bits as whole planes).
    Float32 sums: the same values as scipy's float64 sums within ~1e-7."""
    r = (len(k) - 1) // 2
    mode = _NUMPY_PADS[padding]
    h, w = a.shape[-2:]
    rows = max(32, _BLOCK_FLOATS // w)
    planes = a.reshape(-1, h, w)
    out = np.empty_like(planes)
    # The horizontal pass writes into the middle of `mid`; its r-row margins are then filled as
    # np.pad would, so the vertical pass reads shifted row blocks of one buffer.
    mid = np.empty((h + 2 * r, w), np.float32)
    tmp = np.empty((min(rows, h), w), np.float32)
    for j in range(planes.shape[0]):
        p = np.pad(planes[j], ((0, 0), (r, r)), mode=mode)
        for a0 in range(0, h, rows):
            a1 = min(a0 + rows, h)
            blk, t = mid[r + a0 : r + a1], tmp[: a1 - a0]
            src = p[a0:a1]
            np.multiply(src[:, r : r + w], k[r], out=blk)
            for i in range(1, r + 1):
                np.add(src[:, r - i : r - i + w], src[:, r + i : r + i + w], out=t)
                t *= k[r + i]
                blk += t
        if mode == "constant":
            mid[:r] = 0
            mid[r + h :] = 0
        elif mode == "edge":
            mid[:r] = mid[r]
            mid[r + h :] = mid[r + h - 1]
        else:  # numpy's "reflect": mirrored about the edge row, which is not repeated
            mid[:r] = mid[2 * r : r : -1]
            mid[r + h :] = mid[r + h - 2 : h - 2 : -1]
        o = out[j]
        for a0 in range(0, h, rows):
            a1 = min(a0 + rows, h)
            blk, t = o[a0:a1], tmp[: a1 - a0]
            np.multiply(mid[r + a0 : r + a1], k[r], out=blk)
            for i in range(1, r + 1):
                np.add(mid[r + a0 - i : r + a1 - i], mid[r + a0 + i : r + a1 + i], out=t)
                t *= k[r + i]
                blk += t
    return out.reshape(a.shape)


@functools.lru_cache(maxsize=1024)
def _band(n: int, sigma: float, truncate: float, device: str) -> torch.Tensor:
    """``(n, n)`` float32: ``m[i, j] = k[j - i + r]`` within the radius ``r``, 0 beyond. Filled
    diagonal by diagonal (``2r + 1`` strided writes instead of ``n^2`` index arithmetic: a
    400 px object's band in 0.09 ms, not 0.98)."""
    k = gaussian_kernel(sigma, truncate).numpy()
    r = (len(k) - 1) // 2
    m = np.zeros((n, n), dtype=np.float32)
    flat = m.reshape(-1)
    for d in range(-min(r, n - 1), min(r, n - 1) + 1):
        # the diagonal j - i = d starts at (0, d) or (-d, 0) and holds n - |d| entries
        start = d if d >= 0 else -d * n
        flat[start : start + (n - abs(d)) * (n + 1) : n + 1] = k[d + r]
    return torch.from_numpy(m).to(device)


def blur_small(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Zero-padded separable Gaussian blur of a small ``(..., h, w)`` float tensor as two
    products with cached banded matrices: on a cell-sized crop this is several times cheaper
    than a convolution call and gives the same values (exact zeros beyond the radius)."""
    if sigma == 0:
        return x
    dev = str(x.device)
    return _band(x.shape[-2], float(sigma), float(truncate), dev) @ x @ _band(x.shape[-1], float(sigma), float(truncate), dev).T


def feather_mask(mask: torch.Tensor, sigma: float, truncate: float = 3.0, padding: str = "zeros") -> torch.Tensor:
    """Gaussian-filtered binary mask in ``[0, 1]``; values within float rounding of 1 are snapped
    to exactly 1 so fully covered pixels are fully replaced."""
    a = gaussian_blur(mask.to(torch.float32), sigma, truncate, padding)
    return torch.where(a > 1 - 1e-6, torch.ones_like(a), a.clamp_(0, 1)) if sigma > 0 else a


@serial_kernel
def gaussian_blur_batch(x: torch.Tensor, sigma: np.ndarray) -> torch.Tensor:
    """Blur a float batch ``(B, C, H, W)`` with one ``sigma`` per sample (``(B,)`` float64, 0 =
    unchanged), radius ``ceil(3 * sigma)``, edges replicated; no rounding back to an integer
    dtype (callers that sample the result again, like Resize's antialiasing, want the floats).

    One grouped convolution per axis for the whole batch (each sample and channel its own
    group), so per-sample sigmas cost no more than a shared one."""
    b, c, h, w = x.shape
    r = int(math.ceil(3 * float(sigma.max())))
    t = np.arange(-r, r + 1, dtype=np.float64)
    # A tiny sigma underflows to a delta (sigma 0 leaves its sample unchanged); each sample keeps
    # its own radius, zeros beyond it.
    ss = sigma.reshape(-1, 1)
    k = np.exp(-(t * t) / (2 * np.maximum(ss, 1e-6) ** 2))
    k = np.where(np.abs(t) <= np.ceil(3 * ss), k, 0.0)
    k = np.repeat(np.broadcast_to(k / k.sum(1, keepdims=True), (b, 2 * r + 1)), c, 0)
    k = torch.from_numpy(np.ascontiguousarray(k)).to(x.device, x.dtype)
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    return F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c).view(b, c, h, w)
