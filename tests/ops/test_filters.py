"""iaaa.filters: the truncated Gaussian against scipy.ndimage, its exact-zero support, mass
preservation, and agreement between its code paths (shifted sums for large planes and scipy for small ones on the
CPU, conv2d elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.filters import PADDINGS, blur_small, feather_mask, feather_radius, gaussian_blur, gaussian_blur_batch, gaussian_kernel

SCIPY_MODE = {"zeros": "constant", "replicate": "nearest", "reflect": "mirror"}


def _scipy(x: np.ndarray, sigma: float, truncate: float, padding: str) -> np.ndarray:
    # scipy's own radius rounds truncate * sigma to the nearest integer; ours rounds it up.
    r = feather_radius(sigma, truncate)
    axes = (x.ndim - 2, x.ndim - 1)
    return ndi.gaussian_filter(x.astype(np.float64), sigma, mode=SCIPY_MODE[padding], cval=0.0, radius=r, axes=axes)


def test_kernel_is_normalised_symmetric_and_truncated():
    for sigma, truncate in ((0.5, 3.0), (1.0, 3.0), (1.3, 2.0), (2.7, 4.0)):
        k = gaussian_kernel(sigma, truncate).double()
        r = feather_radius(sigma, truncate)
        assert k.numel() == 2 * r + 1 and r == int(np.ceil(truncate * sigma))
        assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert torch.allclose(k, k.flip(0))
        assert int(k.argmax()) == r
        x = torch.arange(-r, r + 1, dtype=torch.float64)
        assert torch.allclose(k / k[r], torch.exp(-0.5 * (x / sigma) ** 2), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.tuples(st.integers(1, 3), st.integers(9, 40), st.integers(9, 40)),
    sigma=st.floats(0.3, 3.0),
    truncate=st.sampled_from([2.0, 3.0, 4.0]),
    padding=st.sampled_from(PADDINGS),
)
def test_blur_matches_scipy_gaussian_filter(seed, shape, sigma, truncate, padding):
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    got = gaussian_blur(torch.from_numpy(x), sigma, truncate, padding)
    assert got.dtype == torch.float32 and got.shape == shape
    # Mirror padding only matches scipy while the kernel is shorter than the image.
    if padding == "reflect" and feather_radius(sigma, truncate) >= min(shape[-2:]):
        return
    np.testing.assert_allclose(got.numpy(), _scipy(x, sigma, truncate, padding), atol=2e-6)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(1, 128, 128), (2, 130, 200), (3, 256, 129), (1, 1, 160, 140), (1, 700, 128), (2, 300, 512)]),
    sigma=st.floats(0.3, 12.0),
    padding=st.sampled_from(PADDINGS),
)
def test_large_planes_blur_as_scipy_and_keep_exact_zeros(seed, shape, sigma, padding):
    """Planes from 128x128 up take the shifted-sums path: the same values as scipy's float64
    filter, and with zero padding still exactly 0 beyond the radius of every non-zero pixel."""
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    x[..., 40:70, 50:90] = rng.random(shape[:-2] + (30, 40), dtype=np.float32)
    got = gaussian_blur(torch.from_numpy(x), sigma, 3.0, padding)
    assert got.dtype == torch.float32 and got.shape == shape
    np.testing.assert_allclose(got.numpy(), _scipy(x, sigma, 3.0, padding), atol=2e-6)
    if padding == "zeros":
        r = feather_radius(sigma, 3.0)
        near = np.zeros(shape[-2:], bool)
        near[max(40 - r, 0) : 70 + r, max(50 - r, 0) : 90 + r] = True
        assert (got.numpy()[..., ~near] == 0).all()


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape, sigma", [((1, 300, 512), 4.0), ((2, 700, 128), 9.0), ((1, 257, 1024), 1.5)])
def test_large_planes_blur_across_row_blocks(padding, shape, sigma):
    """The shifted-sums path works in blocks of rows: random values everywhere, so every block
    seam and both frame edges are read, agree with scipy's filter of the whole plane."""
    x = np.random.default_rng(7).random(shape, dtype=np.float32)
    got = gaussian_blur(torch.from_numpy(x), sigma, 3.0, padding)
    np.testing.assert_allclose(got.numpy(), _scipy(x, sigma, 3.0, padding), atol=2e-6)


@pytest.mark.parametrize("padding", PADDINGS)
def test_torch_path_equals_scipy_path(padding):
    """The conv2d path (taken on other devices and for tensors that need gradients) and the CPU
    scipy path give the same values."""
    x = torch.rand(2, 3, 29, 34, generator=torch.Generator().manual_seed(0))
    fast = gaussian_blur(x, 1.7, 3.0, padding)
    slow = gaussian_blur(x.clone().requires_grad_(True), 1.7, 3.0, padding)
    assert slow.requires_grad
    torch.testing.assert_close(slow.detach(), fast, atol=1e-6, rtol=1e-5)


def test_zero_padding_preserves_mass_and_support():
    sigma, truncate = 1.5, 3.0
    r = feather_radius(sigma, truncate)
    x = torch.zeros(1, 41, 41, dtype=torch.float64)
    x[0, 20, 20] = 3.0
    x[0, 18, 23] = 1.25
    y = gaussian_blur(x, sigma, truncate)
    assert y.sum().item() == pytest.approx(x.sum().item(), rel=1e-6)  # float32 taps sum to 1 within 1e-7
    # Exactly zero farther than the radius (Chebyshev) from every non-zero pixel, positive within.
    far = torch.from_numpy(ndi.binary_dilation(x[0].numpy() > 0, np.ones((2 * r + 1, 2 * r + 1))))
    assert bool((y[0][~far] == 0).all()) and bool((y[0][far] > 0).all())


@pytest.mark.parametrize("padding", ["replicate", "reflect"])
def test_edge_paddings_keep_a_constant_image_constant(padding):
    x = torch.full((2, 12, 15), 0.375)
    torch.testing.assert_close(gaussian_blur(x, 2.0, 3.0, padding), x, atol=1e-6, rtol=0)


def test_sigma_zero_is_identity_and_bad_inputs_are_refused():
    x = torch.rand(5, 6)
    assert gaussian_blur(x, 0.0) is x and blur_small(x, 0.0) is x
    with pytest.raises(TypeError, match="float"):
        gaussian_blur(torch.ones(4, 4, dtype=torch.uint8), 1.0)
    with pytest.raises(IaaaError, match="shape"):
        gaussian_blur(torch.ones(5), 1.0)
    with pytest.raises(IaaaError, match="padding"):
        gaussian_blur(torch.ones(4, 4), 1.0, padding="wrap")
    with pytest.raises(IaaaError, match="sigma"):
        feather_radius(-1.0)


def test_blur_small_equals_zero_padded_blur():
    x = torch.rand(3, 17, 22, generator=torch.Generator().manual_seed(1))
    for sigma in (0.7, 1.0, 2.5):
        torch.testing.assert_close(blur_small(x, sigma), gaussian_blur(x, sigma), atol=1e-6, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), sigma=st.sampled_from([0.5, 1.0, 2.5, 4.0]), seed=st.integers(0, 99))
def test_blur_small_on_crops_narrower_than_the_kernel(h, w, sigma, seed):
    # The banded matrices hold only the diagonals that fit: a crop narrower than the radius
    # keeps its edge taps, the ones beyond fall off (zero padding), as the convolution does.
    x = torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed))
    want = _scipy(x.numpy(), sigma, 3.0, "zeros")
    np.testing.assert_allclose(blur_small(x, sigma).numpy(), want, atol=2e-6, rtol=1e-5)


def test_feather_mask_is_an_alpha_that_covers_the_inside():
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[8:32, 10:30] = True
    sigma = 1.0
    r = feather_radius(sigma)
    a = feather_mask(mask, sigma)
    assert a.dtype == torch.float32 and float(a.min()) >= 0 and float(a.max()) <= 1
    assert bool((a[8 + r : 32 - r, 10 + r : 30 - r] == 1).all())  # fully covered: exactly 1
    assert bool((a[: 8 - r] == 0).all()) and bool((a[:, 30 + r :] == 0).all())
    assert 0 < float(a[8, 20]) < 1  # the edge is soft


def test_batch_blur_uses_each_samples_sigma():
    x = torch.rand(3, 2, 24, 27, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = np.array([0.0, 0.8, 2.2])
    y = gaussian_blur_batch(x, sigma)
    assert torch.equal(y[0], x[0])
    for i in (1, 2):
        want = ndi.gaussian_filter(x[i].numpy(), sigma[i], mode="nearest", radius=int(np.ceil(3 * sigma[i])), axes=(1, 2))
        np.testing.assert_allclose(y[i].numpy(), want, atol=1e-10)
        torch.testing.assert_close(y[i], gaussian_blur(x[i], float(sigma[i]), 3.0, "replicate"))
    # Replicated edges and normalised taps: a constant image stays constant, whatever the sigma.
    c = torch.full((3, 1, 10, 10), 0.5)
    torch.testing.assert_close(gaussian_blur_batch(c, sigma), c, atol=1e-6, rtol=0)


def test_antialias_sigma_one_rule_for_floats_and_arrays() -> None:
    import numpy as np

    from iaaa.filters import antialias_sigma

    scales = np.array([0.05, 0.5, 0.6, 2 / 3, 0.7, 1.0, 3.0])
    arr = antialias_sigma(scales)
    assert [antialias_sigma(float(s)) for s in scales] == pytest.approx(arr.tolist())
    # (1/s - 1)/2 where it reaches a quarter pixel (s <= 2/3), nothing at or above it
    assert arr.tolist() == pytest.approx([9.5, 0.5, 1 / 3, 0.25, 0.0, 0.0, 0.0])
