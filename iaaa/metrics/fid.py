"""Fréchet distance between Gaussian fits of two feature sets (FID when the features are
Inception pool features), plus the extrapolated, effectively unbiased FID∞ of Chong & Forsyth
(CVPR 2020), which the paper follows.

The trace of the matrix square root is computed from symmetric eigendecompositions in float64:
``tr sqrt(S1 S2) = sum sqrt(eig(A S2 A))`` with ``A = S1^(1/2)``. ``A S2 A`` is symmetric positive
semi-definite, so ``eigvalsh`` is stable and the result is real even when the covariances are
singular (fewer samples than feature dimensions), where the usual ``scipy.linalg.sqrtm(S1 @ S2)``
returns complex noise and needs an ad-hoc diagonal offset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from iaaa.errors import IaaaError

__all__ = ["gaussian_stats", "frechet_distance", "fid", "fid_infinity", "FIDInfinityResult", "check_pair"]


def _as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim != 2:
        raise IaaaError(f"{name}: expected a feature matrix (N, D), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise IaaaError(f"{name}: features contain NaN or inf")
    return t


def check_pair(real: torch.Tensor, fake: torch.Tensor, min_n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate real and fake ``(N, D)`` feature matrices of one width with ``min_n`` rows each;
    returns them as float64 tensors."""
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise IaaaError(f"feature dims differ: real has D={real.shape[1]}, fake has D={fake.shape[1]}")
    for name, t in (("real", real), ("fake", fake)):
        if t.shape[0] < min_n:
            raise IaaaError(f"{name}: need at least {min_n} samples, got {t.shape[0]}")
    return real, fake


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (float64) of ``(N, D)`` features."""
    x = _as_features(features, "features")
    if x.shape[0] < 2:
        raise IaaaError(f"features: need at least 2 samples for a covariance, got {x.shape[0]}")
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _psd_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(sigma)
    # Round-off makes zero eigenvalues of a PSD matrix slightly negative.
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^(1/2) S2 S1^(1/2))^(1/2))``, the squared
    2-Wasserstein distance between ``N(mu1, S1)`` and ``N(mu2, S2)``."""
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    d = mu1.numel()
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise IaaaError(f"{name}: expected ({d}, {d}) to match the mean, got {tuple(s.shape)}")
    if mu2.numel() != d:
        raise IaaaError(f"mu2: expected {d} values, got {mu2.numel()}")
    # Symmetrise first: a covariance that went through float32 is asymmetric at the 1e-8 level,
    # which eigh would silently ignore half of.
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    a = _psd_sqrt(s1)
    m = a @ s2 @ a
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    value = float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)
    # The exact value is >= 0; only round-off can push it below.
    return max(value, 0.0)


def fid(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature matrices ``(N, D)`` and ``(M, D)``.

    FID is biased upwards by roughly ``c / N``: with tens of samples and hundreds of dimensions
    its absolute value says little, so compare FIDs only at equal sample counts, prefer KID for
    small sets, or use :func:`fid_infinity`."""
    real, fake = check_pair(real, fake)
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


@dataclass
class FIDInfinityResult:
    """FID extrapolated to infinitely many fake samples by a line fit of FID against ``1/N``."""

    value: float
    slope: float
    sizes: list[int]
    fids: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def fid_infinity(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    *,
    num_points: int = 15,
    min_size: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> FIDInfinityResult:
    """Chong & Forsyth's FID∞: FID of the full real set against ``N`` fake samples for
    ``num_points`` sizes ``N`` between ``min_size`` (default ``max(D + 1, M // 4)``, which needs
    ``M >= 2 (D + 1)``) and ``M``, a least-squares line in ``1/N``, and its intercept at ``1/N = 0``.

    ``repeats`` random subsets are averaged per size (seeded by ``seed`` or ``generator``). With
    small sets the extrapolation is noisy: the fitted ``sizes``/``fids`` are returned so the fit
    can be checked."""
    real, fake = check_pair(real, fake, min_n=3)
    m, d = fake.shape
    if num_points < 2:
        raise IaaaError(f"num_points: need at least 2 sizes to fit a line, got {num_points}")
    if min_size is None:
        if m < 2 * (d + 1):
            raise IaaaError(
                f"fake: FID∞ needs at least 2 * (D + 1) = {2 * (d + 1)} samples so every fitted subset has a "
                f"full-rank covariance, got {m}; use KID for sets this small"
            )
        min_size = max(d + 1, m // 4)
    lo = max(2, min(int(min_size), m - 1))
    sizes = sorted({int(round(s)) for s in np.linspace(lo, m, num_points)})
    if len(sizes) < 2:
        raise IaaaError(f"fake: {m} samples give fewer than 2 distinct subset sizes; need more samples")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    mu_r, s_r = gaussian_stats(real)
    fids = []
    for n in sizes:
        vals = []
        for _ in range(repeats if n < m else 1):
            idx = torch.randperm(m, generator=g)[:n]
            vals.append(frechet_distance(mu_r, s_r, *gaussian_stats(fake[idx])))
        fids.append(float(np.mean(vals)))
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    slope, intercept = np.polyfit(x, np.asarray(fids), 1)
    return FIDInfinityResult(float(intercept), float(slope), sizes, fids)
