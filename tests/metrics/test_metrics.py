"""FID, KID and SWD against closed forms and direct reference implementations."""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.metrics import fid, fid_infinity, frechet_distance, gaussian_stats, kid, mmd2_unbiased, sliced_wasserstein, swd
from iaaa.metrics.pyramid import gaussian_up, laplacian_pyramid
from iaaa.metrics.swd import pyramid_descriptors, wasserstein1_1d

# The package re-exports the function ``kid`` under the submodule's name; fetch the module itself.
kid_mod = importlib.import_module("iaaa.metrics.kid")


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_cov(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + (0 if rank else 0.1) * np.eye(d)


def _scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


# ----------------------------------------------------------------------------- FID


def test_frechet_distance_diagonal_closed_form():
    # For commuting (diagonal) covariances the distance is |mu1-mu2|^2 + sum (s1 - s2)^2.
    f64 = dict(dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0], **f64), torch.tensor([0.5, 1.0, 1.0], **f64)
    s1, s2 = torch.tensor([1.0, 2.0, 0.5], **f64), torch.tensor([3.0, 0.1, 0.5], **f64)
    expected = float(((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum())
    assert frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2)) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_frechet_distance_matches_scipy_sqrtm(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    ours = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert ours == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-7, abs=1e-9)
    # Symmetric in its two Gaussians.
    back = frechet_distance(torch.from_numpy(mu2), torch.from_numpy(s2), torch.from_numpy(mu1), torch.from_numpy(s1))
    assert back == pytest.approx(ours, rel=1e-7, abs=1e-9)


def test_fid_of_samples_matches_gaussian_closed_form():
    g = _gen(0)
    d, n = 4, 40_000
    rng = np.random.default_rng(1)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.0, 2.0])
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.from_numpy(np.linalg.cholesky(s1)).T + torch.from_numpy(mu1)
    y = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.from_numpy(np.linalg.cholesky(s2)).T + torch.from_numpy(mu2)
    expected = _scipy_frechet(mu1, s1, mu2, s2)
    assert fid(x, y) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("n,d", [(500, 8), (10, 64)])
def test_fid_of_a_set_with_itself_is_zero(n, d):
    # (10, 64): a rank-9 covariance, where sqrtm(S @ S) is numerically complex; eigh stays exact.
    x = torch.randn(n, d, generator=_gen(n), dtype=torch.float64)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid(x.float(), x.float().clone()) == pytest.approx(0.0, abs=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_fid_invariant_to_rotating_both_sets(seed):
    g = _gen(seed)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64)
    y = torch.randn(70, 5, generator=g, dtype=torch.float64) * 1.3 + 0.2
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    assert fid(x @ q, y @ q) == pytest.approx(fid(x, y), rel=1e-8, abs=1e-10)


def test_fid_errors_name_the_problem():
    with pytest.raises(ValueError, match="D=3.*D=4"):
        fid(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="fake: need at least 2"):
        fid(torch.zeros(5, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"real: expected a feature matrix \(N, D\)"):
        fid(torch.zeros(5), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="NaN"):
        fid(torch.full((3, 2), float("nan")), torch.zeros(3, 2))


def test_fid_infinity_removes_small_sample_bias():
    g = _gen(3)
    d = 16
    real = torch.randn(4000, d, generator=g, dtype=torch.float64)
    fake = torch.randn(1500, d, generator=g, dtype=torch.float64) * 1.1 + 0.1
    truth = d * 0.1**2 + d * (1.0 - 1.1) ** 2
    res = fid_infinity(real, fake, num_points=10, repeats=3, seed=0)
    assert res.sizes[0] >= d + 1 and res.sizes[-1] == 1500
    assert res.slope > 0  # FID falls as N grows: the bias is ~ c / N
    biased = res.fids[0]
    assert abs(res.value - truth) < 0.5 * abs(biased - truth)
    again = fid_infinity(real, fake, num_points=10, repeats=3, seed=0)
    assert again.value == res.value
    with pytest.raises(ValueError, match=r"needs at least 2 \* \(D \+ 1\) = 34 samples.*got 30"):
        fid_infinity(real, fake[:30])


def test_gaussian_stats_unbiased_covariance():
    x = torch.randn(50, 3, generator=_gen(0), dtype=torch.float64)
    mu, sigma = gaussian_stats(x)
    assert torch.allclose(mu, x.mean(0))
    assert torch.allclose(sigma, torch.from_numpy(np.cov(x.numpy(), rowvar=False)))


# ----------------------------------------------------------------------------- KID


def _kid_reference(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² with k(a, b) = (a.b / d + 1)^3, written as plain double loops."""
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(2, 7), d=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_kid_matches_double_loop_reference(m, d, seed):
    g = _gen(seed)
    x = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) + 0.3
    res = kid(x, y, subset_size=m, num_subsets=1)
    assert res.subset_size == m and res.std == 0.0
    assert res.mean == pytest.approx(_kid_reference(x.numpy(), y.numpy()), rel=1e-10, abs=1e-12)


def test_mmd2_unbiased_unequal_sizes_matches_reference():
    g = _gen(5)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64)
    kw = lambda a, b: kid_mod.polynomial_kernel(a, b)  # noqa: E731
    assert float(mmd2_unbiased(kw(x, x), kw(y, y), kw(x, y))) == pytest.approx(_kid_reference(x.numpy(), y.numpy()), rel=1e-10)


def test_kid_is_unbiased_for_same_distribution():
    # Mean over many independent same-distribution draws must be ~0 (within 3 standard errors)
    # and individual estimates go negative; the biased V-statistic (diagonals kept) sits far above 0.
    g = _gen(11)
    reps, n, d = 400, 12, 4
    x = torch.randn(reps, n, d, generator=g, dtype=torch.float64)
    y = torch.randn(reps, n, d, generator=g, dtype=torch.float64)
    k = kid_mod.polynomial_kernel
    unbiased = mmd2_unbiased(k(x, x), k(y, y), k(x, y))
    biased = k(x, x).mean((1, 2)) + k(y, y).mean((1, 2)) - 2 * k(x, y).mean((1, 2))
    se = float(unbiased.std() / math.sqrt(reps))
    assert abs(float(unbiased.mean())) < 3 * se
    assert float(biased.mean()) > 10 * float(biased.std() / math.sqrt(reps))
    assert float(unbiased.min()) < 0
    # The public function agrees with the batched kernel path on one of the draws.
    assert kid(x[0], y[0], subset_size=n, num_subsets=1).mean == pytest.approx(float(unbiased[0]), rel=1e-10)


def test_kid_grows_with_distribution_shift():
    g = _gen(2)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64)
    means = [kid(x, torch.randn(300, 8, generator=g, dtype=torch.float64) + s, seed=0).mean for s in (0.0, 0.3, 0.6, 1.2)]
    assert abs(means[0]) < 0.02
    assert means[0] < means[1] < means[2] < means[3]


def test_kid_small_sets_adapt_subset_size_and_report_std():
    g = _gen(7)
    x = torch.randn(20, 16, generator=g)
    y = torch.randn(20, 16, generator=g) + 0.5
    res = kid(x, y, seed=1)
    assert res.subset_size == 10 and res.num_subsets == 100 and res.n_real == 20 and res.n_fake == 20
    assert res.std > 0 and math.isfinite(res.mean) and len(res.values) == 100
    assert kid(x, y, seed=1).values == res.values  # seeded subsets are reproducible
    assert kid(x, y, seed=2).values != res.values
    assert kid(x, y, generator=_gen(1)).values == res.values  # seed s == Generator().manual_seed(s)
    assert res.to_dict()["subset_size"] == 10 and "values" not in res.to_dict()


def test_kid_clamps_oversized_subset_with_warning():
    x, y = torch.randn(30, 4, generator=_gen(0)), torch.randn(8, 4, generator=_gen(1))
    with pytest.warns(UserWarning, match="subset_size 1000 exceeds the smaller set"):
        res = kid(x, y, subset_size=1000, num_subsets=5)
    assert res.subset_size == 8
    with pytest.raises(ValueError, match="need at least 2"):
        kid(x, y[:1])
    with pytest.raises(ValueError, match="subset_size: must be >= 2"):
        kid(x, y, subset_size=1)


def test_kid_large_set_path_equals_precomputed_path(monkeypatch):
    g = _gen(9)
    x, y = torch.randn(40, 6, generator=g), torch.randn(50, 6, generator=g) * 1.2
    fast = kid(x, y, num_subsets=20, subset_size=15, seed=4)
    monkeypatch.setattr(kid_mod, "_PRECOMPUTE_MAX", 0)
    slow = kid(x, y, num_subsets=20, subset_size=15, seed=4, chunk=7)
    assert np.allclose(fast.values, slow.values, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- SWD


@settings(max_examples=30, deadline=None)
@given(a=st.lists(st.floats(-100, 100), min_size=1, max_size=30), b=st.lists(st.floats(-100, 100), min_size=1, max_size=30))
def test_wasserstein1_1d_matches_scipy_for_unequal_sizes(a, b):
    ta = torch.tensor(sorted(a), dtype=torch.float64)[:, None]
    tb = torch.tensor(sorted(b), dtype=torch.float64)[:, None]
    assert float(wasserstein1_1d(ta, tb)[0]) == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)


def test_sliced_wasserstein_zero_for_identical_and_closed_form_for_shift():
    g = _gen(0)
    d = 10
    a = torch.randn(400, d, generator=g, dtype=torch.float64)
    assert sliced_wasserstein(a, a.clone()) == 0.0
    s = torch.randn(d, generator=g, dtype=torch.float64)
    # Shifting by s moves every 1-D projection on unit theta by theta.s, so
    # SW1 = |s| E|theta_1| = |s| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
    c_d = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2))
    values = [sliced_wasserstein(a, a + t * s, num_projections=4096, seed=1) for t in (0.5, 1.0, 2.0)]
    for t, v in zip((0.5, 1.0, 2.0), values):
        assert v == pytest.approx(t * float(s.norm()) * c_d, rel=0.04)
    assert values[0] < values[1] < values[2]


def test_laplacian_pyramid_reconstructs_exactly():
    x = torch.rand(2, 3, 37, 50, generator=_gen(0), dtype=torch.float64)
    pyr = laplacian_pyramid(x, 4)
    assert [p.shape[-2:] for p in pyr] == [(37, 50), (19, 25), (10, 13), (5, 7)]
    rec = pyr[-1]
    for band in reversed(pyr[:-1]):
        rec = band + gaussian_up(rec, tuple(band.shape[-2:]))
    assert torch.allclose(rec, x, atol=1e-12)
    # Band-pass levels of a constant image are zero: the up-sampler preserves constants.
    flat = laplacian_pyramid(torch.full((1, 1, 32, 32), 0.7, dtype=torch.float64), 3)
    assert flat[0].abs().max() < 1e-12 and flat[1].abs().max() < 1e-12


def test_pyramid_descriptors_shapes():
    x = torch.rand(3, 2, 64, 64, generator=_gen(0))
    d = pyramid_descriptors(x, 3, patch_size=7, patches_per_image=16, generator=_gen(1))
    assert [t.shape for t in d] == [(48, 98)] * 3


def _cells(n: int, seed: int, brightness: float = 1.0, size: int = 64) -> list[torch.Tensor]:
    """Bright discs on a dark noisy background, uint8."""
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for _ in range(n):
        img = torch.rand(size, size, generator=g) * 0.1
        for cy, cx, r in (torch.rand(3, 3, generator=g) * torch.tensor([size, size, 8]) + torch.tensor([0, 0, 4])).tolist():
            img = torch.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 0.7 * brightness, img)
        out.append((img.clamp(0, 1) * 255).round().to(torch.uint8)[None])
    return out


def test_swd_zero_for_identical_sets_and_grows_with_shift():
    real = _cells(12, 0)
    assert swd(real, [r.clone() for r in real]).mean == 0.0
    dimmer = [swd(real, _cells(12, 0, brightness=b)).mean for b in (1.0, 0.8, 0.6, 0.4)]
    assert dimmer[0] == 0.0 and dimmer[0] < dimmer[1] < dimmer[2] < dimmer[3]
    other = swd(real, _cells(12, 1))
    assert 0 < other.mean < dimmer[3] and other.resolutions == [64, 32, 16] and len(other.per_level) == 3


def test_swd_is_reproducible_and_handles_16bit_and_mixed_sizes():
    real = _cells(6, 0)
    fake = _cells(5, 3)
    a = swd(real, fake, seed=4)
    assert swd(real, fake, seed=4) == a
    assert swd(real, fake, seed=5).mean != a.mean
    # uint16 = uint8 * 257 is the same image after the documented dtype scaling.
    as16 = [(f.to(torch.int32) * 257).to(torch.uint16) for f in fake]
    assert swd(real, as16, seed=4).mean == pytest.approx(a.mean, rel=1e-5)
    # Different sizes are fitted to the first real image's size.
    mixed = swd(real, [f[:, :40, :] for f in fake] + [f for f in fake], seed=4)
    assert mixed.n_fake == 10 and math.isfinite(mixed.mean)
    with pytest.raises(ValueError, match="need images in both sets"):
        swd(real, [])


def test_metric_functions_accept_numpy():
    x = np.random.default_rng(0).normal(size=(30, 3))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(kid(x, x + 1).mean)
