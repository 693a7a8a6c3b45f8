"""Kernel Inception Distance (Bińkowski et al., ICLR 2018): the unbiased estimate of the squared
maximum mean discrepancy (MMD²) between two feature sets under the cubic polynomial kernel
``k(x, y) = (x·y / D + 1)^3``, averaged over random subsets.

Unbiased means the expectation over draws of the data equals the true MMD², which is 0 for two
samples of one distribution; single estimates scatter around it, so KID *can be negative* and a
small negative value means "indistinguishable at this sample size", not an error.

Subset size adapts to small data instead of refusing: by default it is ``min(1000, n_min // 2)``
(``n_min`` = the smaller set, never below 2), so subsets differ from each other and the reported
std measures how much the estimate moves with the samples; 1000 is the usual size for large sets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from iaaa.metrics.fid import check_pair
from iaaa.errors import IaaaError

__all__ = ["polynomial_kernel", "mmd2_unbiased", "kid", "KIDResult", "default_subset_size"]

# Above this many samples per set the full kernel matrices (float64, n x n) get too large to
# precompute, and each subset's blocks are computed from the features instead.
_PRECOMPUTE_MAX = 3000


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> torch.Tensor:
    """``(gamma * x @ y.T + coef0) ** degree`` with ``gamma = 1 / D`` by default. Batched over
    leading dims."""
    g = 1.0 / x.shape[-1] if gamma is None else gamma
    return (x @ y.transpose(-1, -2) * g + coef0) ** degree


def mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² from kernel blocks ``(..., m, m)``, ``(..., n, n)``, ``(..., m, n)``:
    mean off-diagonal ``Kxx`` + mean off-diagonal ``Kyy`` - 2 mean ``Kxy``.

    Dropping the diagonals (a sample compared with itself) is what removes the bias."""
    m, n = kxx.shape[-1], kyy.shape[-1]
    if m < 2 or n < 2:
        raise IaaaError(f"unbiased MMD² needs at least 2 samples per set, got {m} and {n}")
    sxx = kxx.sum((-1, -2)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)
    syy = kyy.sum((-1, -2)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * kxy.sum((-1, -2)) / (m * n)


def default_subset_size(n_real: int, n_fake: int, requested: int | None = None) -> int:
    """The subset size :func:`kid` uses: ``requested`` clamped to the smaller set, or by default
    ``min(1000, n_min // 2)``, never below 2."""
    n_min = min(n_real, n_fake)
    if requested is None:
        return max(2, min(1000, n_min // 2))
    if requested < 2:
        raise IaaaError(f"subset_size: must be >= 2, got {requested}")
    return min(int(requested), n_min)


@dataclass
class KIDResult:
    """Mean and std of the per-subset unbiased MMD² estimates, with the settings that made them."""

    mean: float
    std: float
    subset_size: int
    num_subsets: int
    n_real: int
    n_fake: int
    values: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, values: bool = False) -> dict:
        d = {k: getattr(self, k) for k in ("mean", "std", "subset_size", "num_subsets", "n_real", "n_fake")}
        if values:
            d["values"] = list(self.values)
        return d

    def __format__(self, spec: str) -> str:
        spec = spec or ".4f"
        return f"{self.mean:{spec}} ± {self.std:{spec}}"


def kid(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    *,
    subset_size: int | None = None,
    num_subsets: int = 100,
    seed: int = 0,
    generator: torch.Generator | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    chunk: int | None = None,
) -> KIDResult:
    """KID between feature matrices ``real (N, D)`` and ``fake (M, D)``.

    Each of ``num_subsets`` subsets draws ``subset_size`` samples without replacement from each
    set (seeded by ``seed``, or by ``generator`` when given); the result holds the mean and std
    over subsets. A ``subset_size`` above the smaller set is clamped with a warning, and the
    default adapts to small sets (see module docs). Computation is float64 and vectorised over
    subsets (``chunk`` subsets at a time)."""
    real, fake = check_pair(real, fake)
    n, m_fake = real.shape[0], fake.shape[0]
    size = default_subset_size(n, m_fake, subset_size)
    if subset_size is not None and size < subset_size:
        warnings.warn(f"kid: subset_size {subset_size} exceeds the smaller set ({min(n, m_fake)} samples); using {size}", stacklevel=2)
    if num_subsets < 1:
        raise IaaaError(f"num_subsets: must be >= 1, got {num_subsets}")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    # argsort of uniform noise = one independent permutation per subset, drawn in one call.
    ix = torch.rand(num_subsets, n, generator=g).argsort(1)[:, :size]
    iy = torch.rand(num_subsets, m_fake, generator=g).argsort(1)[:, :size]
    kw = dict(degree=degree, gamma=(1.0 / real.shape[1]) if gamma is None else gamma, coef0=coef0)
    if chunk is None:
        chunk = max(1, int(2e7 // (3 * size * size)))
    precompute = max(n, m_fake) <= _PRECOMPUTE_MAX
    if precompute:
        kxx_all, kyy_all, kxy_all = polynomial_kernel(real, real, **kw), polynomial_kernel(fake, fake, **kw), polynomial_kernel(real, fake, **kw)
    values = []
    for s in range(0, num_subsets, chunk):
        a, b = ix[s : s + chunk], iy[s : s + chunk]
        if precompute:
            kxx = kxx_all[a[:, :, None], a[:, None, :]]
            kyy = kyy_all[b[:, :, None], b[:, None, :]]
            kxy = kxy_all[a[:, :, None], b[:, None, :]]
        else:
            xs, ys = real[a], fake[b]
            kxx, kyy, kxy = polynomial_kernel(xs, xs, **kw), polynomial_kernel(ys, ys, **kw), polynomial_kernel(xs, ys, **kw)
        values.append(mmd2_unbiased(kxx, kyy, kxy))
    v = torch.cat(values)
    std = float(v.std(unbiased=True)) if v.numel() > 1 else 0.0
    return KIDResult(float(v.mean()), std, size, num_subsets, n, m_fake, v.tolist())
