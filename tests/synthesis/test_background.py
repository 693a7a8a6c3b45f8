"""Cell removal: untouched outside, fill values drawn from outside pixels, cells fully gone,
gradients continued (bilinear), determinism, Gaussian helpers, real data."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.filters import blur_small, feather_radius, gaussian_blur
from iaaa.synthesis import BackgroundConfig, remove_cells
from iaaa.structures import from_float, to_float



pytestmark = pytest.mark.usefixtures("one_thread")
DTYPES = [torch.uint8, torch.uint16, torch.float32]


@st.composite
def scenes(draw):
    h, w = draw(st.integers(24, 56)), draw(st.integers(24, 56))
    c = draw(st.sampled_from([1, 3]))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(h, w, dtype=torch.int64)
    for k in range(1, draw(st.integers(1, 5)) + 1):
        rh, rw = int(torch.randint(2, 10, (1,), generator=g)), int(torch.randint(2, 10, (1,), generator=g))
        y, x = int(torch.randint(0, h - rh, (1,), generator=g)), int(torch.randint(0, w - rw, (1,), generator=g))
        lab[y : y + rh, x : x + rw] = k  # later cells may cover earlier ones: ids with holes are fine
    img = from_float(torch.rand(c, h, w, generator=g) * 0.3 + 0.6 * (lab > 0), dtype)
    return img, lab, draw(st.sampled_from(["paper", "bilinear"])), draw(st.sampled_from([0.0, 1.0, 2.0])), seed, draw(st.sampled_from([1, 4]))


@settings(max_examples=25, deadline=None)
@given(scenes())
def test_removal_properties(scene):
    img, lab, method, sigma, seed, patch = scene
    r = remove_cells(img, lab, BackgroundConfig(background_method=method, background_sigma=sigma, background_candidates=8, background_patch=patch), generator=torch.Generator().manual_seed(seed))
    assert r.image.dtype == img.dtype and r.image.shape == img.shape
    # Outside the feathered boxes nothing changes, bit for bit.
    assert torch.equal(r.image[:, ~r.fill_mask], img[:, ~r.fill_mask])
    assert bool((r.alpha[~r.fill_mask] == 0).all())
    # Before feathering, every filled value is the value of some outside pixel.
    x = to_float(img)
    outside_vals = {tuple(v) for v in x[:, r.outside_mask].T.tolist()}
    assert outside_vals
    filled = r.filled[:, r.fill_mask].T.tolist()
    assert all(tuple(v) in outside_vals for v in filled)
    assert not (r.outside_mask & (lab > 0)).any()
    # Every cell pixel lies where the filled box is pasted at full strength: the cell is gone.
    cells = lab > 0
    assert bool((r.alpha[cells] == 1).all())
    assert torch.equal(r.image[:, cells], from_float(r.filled[:, cells], img.dtype))
    # Same generator seed, same result.
    r2 = remove_cells(img, lab, BackgroundConfig(background_method=method, background_sigma=sigma, background_candidates=8, background_patch=patch), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(r.image, r2.image)


def test_feather_reaches_the_frame():
    # A cell on the border must be removed up to the frame (replicate-padded feather).
    lab = torch.zeros(40, 40, dtype=torch.int64)
    lab[0:6, 10:16] = 1
    img = torch.full((1, 40, 40), 10, dtype=torch.uint8)
    img[0][lab > 0] = 250
    out = remove_cells(img, lab, BackgroundConfig(background_method="bilinear")).image
    assert int(out.max()) == 10


def _ramp_scene(seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = 96, 128
    ramp = torch.linspace(0.1, 0.7, w).view(1, 1, w).expand(1, h, w)
    noise = torch.randn(1, h, w, generator=g) * 0.03
    lab = torch.zeros(h, w, dtype=torch.int64)
    lab[30:70, 40:90] = 1
    img = (ramp + noise).clamp(0, 1)
    img = torch.where(lab > 0, torch.full_like(img, 0.95), img)
    return img, lab, ramp, noise


def test_bilinear_continues_gradient_and_keeps_noise():
    img, lab, ramp, noise = _ramp_scene()
    res = {}
    for m in ("paper", "bilinear"):
        out = remove_cells(img, lab, BackgroundConfig(background_method=m, background_candidates=64), generator=torch.Generator().manual_seed(1)).image
        # Illumination: the fill's column means against the ramp (noise averages out).
        err = (out[0, 30:70, 40:90].mean(0) - ramp[0, 0, 40:90]).abs().mean().item()
        # Texture: spread of neighbour differences inside the box vs far outside it.
        d = out[0, :, 1:] - out[0, :, :-1]
        res[m] = (err, d[30:70, 41:89].std().item() / d[:, :30].std().item())
    assert res["bilinear"][0] < 0.01  # follows the ramp across a 50-pixel box
    assert res["paper"][0] > 10 * res["bilinear"][0]  # one corner-average level for the whole box
    assert 0.8 < res["bilinear"][1] < 1.25  # noise level kept
    assert res["paper"][1] < 0.8  # the paper's min-of-n flattens texture


def _neighbour_corr(x: torch.Tensor, m: torch.Tensor) -> float:
    """Correlation of horizontally adjacent pixels of ``x`` (H, W) where both lie in ``m``."""
    both = m[:, 1:] & m[:, :-1]
    a, b = x[:, :-1][both], x[:, 1:][both]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def test_patch_fill_keeps_the_noise_correlation():
    # Flat background with spatially correlated noise (white noise blurred at sigma 1.5: the
    # neighbour correlation is ~0.9, like camera/optics-smoothed noise) and two large cells.
    g = torch.Generator().manual_seed(3)
    h, w = 128, 160
    noise = gaussian_blur(torch.randn(1, h, w, generator=g), 1.5, 3.0, "reflect")
    noise = noise / noise.std() * 0.03
    lab = torch.zeros(h, w, dtype=torch.int64)
    lab[20:60, 30:80] = 1
    lab[70:110, 90:140] = 2
    img = (0.3 + noise).clamp(0, 1)
    img = torch.where(lab > 0, torch.full_like(img, 0.9), img)
    corr, sd = {}, {}
    for k in (1, 8):
        r = remove_cells(img, lab, BackgroundConfig(background_method="bilinear", background_patch=k), generator=torch.Generator().manual_seed(0))
        inner = r.alpha >= 1
        corr[k], sd[k] = _neighbour_corr(r.filled[0], inner), float(r.filled[0][inner].std())
        ref = r.outside_mask
    corr_out = _neighbour_corr(img[0], ref)
    assert corr_out > 0.8
    assert abs(corr[1]) < 0.2  # per-pixel draws: white noise
    assert abs(corr[8] - corr_out) < 0.15  # 8x8 windows: the background's correlation is kept
    assert abs(corr[8] - corr_out) < 0.25 * abs(corr[1] - corr_out)
    assert 0.8 < sd[8] / float(img[0][ref].std()) < 1.25  # and its noise level
    # The default (patch=8) still removes every cell and samples only outside pixels.
    r = remove_cells(img, lab, BackgroundConfig(background_method="bilinear"), generator=torch.Generator().manual_seed(0))
    assert not (r.outside_mask & (lab > 0)).any()
    assert int((r.image[0][lab > 0] > 0.6).sum()) == 0  # the cells are gone


def test_patch_is_ignored_by_the_paper_method_and_validated():
    img, lab, _, _ = _ramp_scene()
    a = remove_cells(img, lab, BackgroundConfig(background_method="paper", background_patch=8), generator=torch.Generator().manual_seed(1))
    b = remove_cells(img, lab, BackgroundConfig(background_method="paper"), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.image, b.image)
    with pytest.raises(ValueError, match="patch"):
        remove_cells(img, lab, BackgroundConfig(background_method="bilinear", background_patch=0))


def test_dense_image_falls_back_to_gaps_between_cells():
    # Cells tile the image so densely that merged boxes cover everything.
    lab = torch.zeros(64, 64, dtype=torch.int64)
    k = 1
    for y in range(0, 64, 8):
        for x in range(0, 64, 8):
            lab[y + 1 : y + 7, x + 1 : x + 7] = k
            k += 1
    img = torch.where(lab > 0, torch.tensor(200), torch.tensor(30)).to(torch.uint8)[None]
    r = remove_cells(img, lab, BackgroundConfig(background_method="bilinear", background_margin=2, background_sigma=1.0))
    assert r.outside_mask.any() and not (r.outside_mask & (lab > 0)).any()
    assert int(r.image.max()) == 30


def test_errors_name_the_fault():
    lab = torch.ones(8, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="every pixel"):
        remove_cells(torch.zeros(1, 8, 8), lab, BackgroundConfig(background_method="bilinear")).image
    with pytest.raises(ValueError, match="labels: shape"):
        remove_cells(torch.zeros(1, 8, 9), torch.zeros(8, 8, dtype=torch.int64), BackgroundConfig(background_method="bilinear")).image
    with pytest.raises(ValueError, match="method"):
        remove_cells(torch.zeros(1, 8, 8), torch.zeros(8, 8, dtype=torch.int64), BackgroundConfig(background_method="telea")).image
    with pytest.raises(ValueError, match="^background_candidates: must be in"):
        remove_cells(torch.zeros(1, 8, 8), torch.zeros(8, 8, dtype=torch.int64), BackgroundConfig(background_method="bilinear", background_candidates=0)).image


def test_no_cells_is_identity_and_2d_images_work():
    img = torch.randint(0, 255, (20, 30), dtype=torch.uint8)
    out = remove_cells(img, torch.zeros(20, 30, dtype=torch.int64), BackgroundConfig(background_method="bilinear")).image
    assert out.shape == (1, 20, 30) and torch.equal(out[0], img)


@settings(max_examples=30, deadline=None)
@given(st.integers(5, 40), st.integers(5, 40), st.sampled_from([0.5, 1.0, 1.7, 3.0]), st.integers(0, 10_000))
def test_gaussian_support_and_band_blur(h, w, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(h, w, generator=g) < 0.05).float()
    r = feather_radius(sigma)
    a = gaussian_blur(m, sigma)
    b = blur_small(m, sigma)
    assert torch.allclose(a, b, atol=1e-6)
    near = F.max_pool2d(m[None, None], 2 * r + 1, 1, r)[0, 0] > 0
    assert bool((a[~near] == 0).all()) and bool((b[~near] == 0).all())
    assert bool((a[m > 0] > 0).all())


def test_real_dsb_backgrounds(dsb_fluo):
    for s in dsb_fluo[::3]:
        img, lab = s.image, s.labels
        r = remove_cells(img, lab, BackgroundConfig(background_method="bilinear"), generator=torch.Generator().manual_seed(0))
        assert torch.equal(r.image[:, ~r.fill_mask], img[:, ~r.fill_mask])
        cells = lab > 0
        # Cells are gone: what replaced them looks like the image's own background.
        bg_hi = float(torch.quantile(img[0][~cells].float(), 0.99))
        assert float(r.image[0][cells].float().mean()) <= bg_hi, s.name
