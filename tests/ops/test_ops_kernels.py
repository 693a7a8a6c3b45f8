"""Functional kernels against independent references: torch primitives, torchvision, scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TNF
import torchvision.transforms.v2.functional as TF
from scipy import ndimage

from iaaa.ops import functional as F
from iaaa.structures import labels_to_boxes


def _u8(shape, seed=0):
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _u16(shape, seed=0):
    return torch.randint(0, 65536, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int32).to(torch.uint16)


def _labels(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 5, shape, generator=g) * 11


# ----------------------------------------------------------------------------- geometry


def test_flips_are_torch_flips():
    x, lab = _u16((2, 3, 7, 10)), _labels((2, 7, 10))
    out, ol = F.hflip(x, lab)
    assert torch.equal(out.view(torch.int16), x.view(torch.int16).flip(-1)) and torch.equal(ol, lab.flip(-1))
    out, ol = F.vflip(x, lab)
    assert torch.equal(out.view(torch.int16), x.view(torch.int16).flip(-2)) and torch.equal(ol, lab.flip(-2))


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_quarter_turns_with_expand_are_rot90(k):
    x, lab = _u8((1, 2, 5, 8)), _labels((1, 5, 8))
    out, ol = F.rotate(x, lab, 90.0 * k, expand=True)
    assert torch.equal(out, torch.rot90(x, k, (-2, -1)))
    assert torch.equal(ol, torch.rot90(lab, k, (-2, -1)))


@pytest.mark.parametrize("angle", [17.0, -33.0, 45.0, 120.0])
def test_rotate_matches_torchvision(angle):
    x = torch.rand(1, 3, 31, 40, generator=torch.Generator().manual_seed(1))
    ours, _ = F.rotate(x, None, angle)
    ref = TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR)
    # Interior pixels agree to float precision (borders differ by design: we clamp, torchvision
    # blends with zeros).
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert torch.allclose(ours[inner], ref[inner], atol=1e-5)
    lab = _labels((1, 31, 40))
    _, ol = F.rotate(x, lab, angle)
    rl = TF.rotate(lab, angle, interpolation=TF.InterpolationMode.NEAREST)
    assert (ol != rl).float().mean() < 0.01  # only rounding ties may differ


@pytest.mark.parametrize("size", [(14, 17), (4, 5), (8, 10), (12, 15)])
def test_resize_expand_matches_interpolate(size):
    x = torch.rand(2, 3, 8, 10, generator=torch.Generator().manual_seed(2))
    scale = size[1] / 10
    w = F.scale_warp((8, 10), scale, expand=True)
    if w.out_size != size:
        pytest.skip("rounded size differs from the requested one")
    ours = F.warp_image(x, w)
    ref = TNF.interpolate(x, size=size, mode="bilinear", align_corners=False)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_resize_by_two_nearest_repeats_pixels():
    lab = _labels((1, 6, 7))
    _, ol = F.resize(torch.zeros(1, 1, 6, 7), lab, 2.0, expand=True)
    assert torch.equal(ol, lab.repeat_interleave(2, -2).repeat_interleave(2, -1))


def test_resize_antialias_smooths_downscale():
    x = torch.zeros(1, 1, 66, 66)
    x[..., ::2] = 1.0  # Nyquist stripes: point samples every 3rd column alias to coarse stripes
    alias, _ = F.resize(x, None, 1 / 3, antialias=False)
    smooth, _ = F.resize(x, None, 1 / 3, antialias=True)
    assert alias.shape[-1] == 22
    assert float(alias.std()) > 0.4 and float(smooth[..., 3:-3, 3:-3].std()) < 0.05
    assert abs(float(smooth.mean()) - 0.5) < 0.02


@pytest.mark.parametrize("t", [3, -4, 0, 12])
def test_translate_is_an_exact_shift(t):
    x, lab = _u8((1, 1, 6, 9)), _labels((1, 6, 9))
    out, ol = F.translate(x, lab, t, "x")
    ref = torch.zeros_like(x)
    rl = torch.zeros_like(lab)
    if t >= 0:
        ref[..., t:] = x[..., : 9 - t] if t < 9 else ref[..., t:]
        rl[..., t:] = lab[..., : 9 - t] if t < 9 else rl[..., t:]
    else:
        ref[..., :t] = x[..., -t:]
        rl[..., :t] = lab[..., -t:]
    assert torch.equal(out, ref) and torch.equal(ol, rl)
    out, ol = F.translate(x, lab, t, "x", expand=True)
    assert out.shape[-1] == 9 + abs(t)
    assert torch.equal(out[..., max(t, 0): max(t, 0) + 9], x)


def test_shear_matches_torchvision_affine():
    x = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(3))
    s = 0.2
    ours, _ = F.shear(x, None, s, "x")
    # torchvision shears by an angle: x' = x - tan(shear_x) * y about the centre.
    ref = TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[float(np.degrees(np.arctan(-s))), 0.0], interpolation=TF.InterpolationMode.BILINEAR)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert torch.allclose(ours[inner], ref[inner], atol=1e-4)


def test_crop_resize_is_a_zoom():
    x = torch.rand(1, 1, 8, 8)
    out, _ = F.crop_resize(x, None, (2.0, 2.0, 6.0, 6.0))
    ref = TNF.interpolate(x[..., 2:6, 2:6], size=(8, 8), mode="bilinear", align_corners=False)
    # Identical where the bilinear footprint lies inside the window; at its rim we read the real
    # neighbours outside the window where crop-then-resize clamps.
    assert torch.allclose(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)


def test_boxes_follow_masks():
    lab = torch.zeros(1, 20, 30, dtype=torch.int64)
    lab[0, 3:8, 4:12] = 1
    lab[0, 12:18, 20:27] = 2
    boxes = labels_to_boxes(lab[0]) + torch.tensor([0.0, 0.0, 1.0, 1.0])  # inclusive -> edge coordinates
    for warp in (F.flip_warp((20, 30), True), F.flip_warp((20, 30), False), F.rotate_warp((20, 30), 90, True), F.translate_warp((20, 30), 5, "y")):
        moved = F.warp_labels(lab, warp)
        ref = labels_to_boxes(moved[0]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        assert torch.allclose(F.warp_boxes(boxes, warp), ref)
    # Non-axis-aligned: the moved box contains the moved mask's box.
    warp = F.rotate_warp((20, 30), 30.0, True)
    moved = F.warp_labels(lab, warp)
    ref = labels_to_boxes(moved[0]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    got = F.warp_boxes(boxes, warp)
    assert bool((got[:, :2] <= ref[:, :2] + 1).all()) and bool((got[:, 2:] >= ref[:, 2:] - 1).all())


def test_boxes_that_leave_the_frame_collapse():
    boxes = torch.tensor([[2.0, 2.0, 6.0, 6.0], [20.0, 2.0, 28.0, 9.0]])
    got = F.warp_boxes(boxes, F.translate_warp((10, 30), 15, "x"))
    area = (got[:, 2] - got[:, 0]) * (got[:, 3] - got[:, 1])
    assert float(area[0]) > 0 and float(area[1]) == 0.0


def test_large_label_ids_move_exactly():
    lab = torch.full((1, 9, 9), 2**40 + 7, dtype=torch.int64)
    lab[0, :3] = 0
    _, ol = F.rotate(torch.zeros(1, 1, 9, 9), lab, 33.0, expand=True)
    assert set(torch.unique(ol).tolist()) == {0, 2**40 + 7}


def test_geometry_errors_name_the_problem():
    with pytest.raises(ValueError, match="scale"):
        F.scale_warp((5, 5), 0.0)
    with pytest.raises(ValueError, match="axis"):
        F.shear_warp((5, 5), 0.1, "z")
    with pytest.raises(ValueError, match="image: size"):
        F.warp_image(torch.zeros(1, 1, 4, 4), F.flip_warp((5, 5), True))
    with pytest.raises(ValueError, match="labels"):
        F.rotate(torch.zeros(1, 1, 5, 5), torch.zeros(1, 4, 5, dtype=torch.long), 10.0)
    with pytest.raises(TypeError, match="integer"):
        F.rotate(torch.zeros(1, 1, 5, 5), torch.zeros(1, 5, 5), 10.0)
    with pytest.raises(ValueError, match="batch"):
        F.warp_image(torch.zeros(3, 1, 5, 5), F.rotate_warp((5, 5), [1.0, 2.0]))
    with pytest.raises(ValueError, match="box"):
        F.crop_warp((5, 5), (3.0, 0.0, 2.0, 5.0))


# ----------------------------------------------------------------------------- photometric


def test_uint8_kernels_match_torchvision():
    x = _u8((2, 3, 16, 20), seed=5)
    assert torch.equal(F.equalize(x), TF.equalize(x))
    assert torch.equal(F.invert(x), TF.invert(x))
    for bits in (1, 4, 7, 8):
        assert torch.equal(F.posterize(x, bits), TF.posterize(x, bits))
    # These round where torchvision truncates: at most one grey level apart.
    assert (F.autocontrast(x).int() - TF.autocontrast(x).int()).abs().max() <= 1
    for f in (0.3, 1.7):
        assert (F.adjust_brightness(x, f).int() - TF.adjust_brightness(x, f).int()).abs().max() <= 1
        # torchvision rounds the gray image to uint8 before blending: up to two levels apart.
        assert (F.adjust_saturation(x, f).int() - TF.adjust_saturation(x, f).int()).abs().max() <= 2
        assert (F.adjust_contrast(x, f).int() - TF.adjust_contrast(x, f).int()).abs().max() <= 1
        assert (F.adjust_sharpness(x, f).int() - TF.adjust_sharpness(x, f).int()).abs().max() <= 1


def test_float_kernels_match_torchvision():
    x = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(6))
    for f in (0.3, 1.7):
        assert torch.allclose(F.adjust_brightness(x, f), TF.adjust_brightness(x, f), atol=1e-6)
        assert torch.allclose(F.adjust_contrast(x, f), TF.adjust_contrast(x, f), atol=1e-5)
        assert torch.allclose(F.adjust_saturation(x, f), TF.adjust_saturation(x, f), atol=1e-5)
        assert torch.allclose(F.adjust_sharpness(x, f), TF.adjust_sharpness(x, f), atol=1e-5)
    assert torch.allclose(F.posterize(x, 3), TF.posterize(x, 3))
    assert torch.allclose(F.invert(x), TF.invert(x))


def test_solarize_inverts_strictly_above_threshold():
    x = torch.tensor([[[[0, 100, 127, 128, 200, 255]]]], dtype=torch.uint8)
    assert F.solarize(x, 0.5).flatten().tolist() == [0, 100, 127, 255 - 128, 55, 0]
    assert torch.equal(F.solarize(x, 1.0), x)
    assert torch.equal(F.solarize(x, 0.0), TF.invert(x) * (x > 0) + x * (x == 0))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = torch.rand(1, 2, 20, 24, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ours = F.gaussian_blur(x, sigma)
    # scipy truncates at int(truncate * sigma + 0.5) == ceil(3 sigma) for these sigmas.
    ref = np.stack([ndimage.gaussian_filter(x[0, c].numpy(), sigma, mode="nearest", truncate=3.0) for c in range(2)])
    assert np.allclose(ours[0].numpy(), ref, atol=1e-6)


def test_per_sample_parameters():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    f = torch.tensor([0.5, 1.0, 1.5])
    out = F.adjust_brightness(x, f)
    for i in range(3):
        assert torch.equal(out[i], F.adjust_brightness(x[i:i + 1], float(f[i]))[0])
    with pytest.raises(ValueError, match="factor: expected 1 or 3"):
        F.adjust_brightness(x, [1.0, 2.0])


# ----------------------------------------------------------------------------- 16 bit


def test_uint16_equalize_uses_all_16_bits():
    # A 12-bit camera image in a uint16 container: 64x64 = 4096 pixels, fewer than 65536 levels.
    x = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(9)) ** 3 * 4095).round().to(torch.int32).to(torch.uint16)
    out = F.equalize(x)
    vals = out.to(torch.int32)
    assert int(vals.max()) == 65535 and int(vals.min()) == 0
    assert torch.unique(vals).numel() == torch.unique(x.to(torch.int32)).numel()  # no 8-bit merging
    # Monotone: order of pixel values is kept.
    order = torch.argsort(x.to(torch.int32).flatten(), stable=True)
    assert bool((vals.flatten()[order].diff() >= 0).all())
    # Roughly uniform histogram over the full range.
    hist = torch.histc(vals.float(), bins=8, min=0, max=65535)
    assert float(hist.min()) > 0.5 * float(hist.mean())


def _rank_reference(v: np.ndarray) -> tuple[np.ndarray, int]:
    """Pixels strictly below each pixel, and pixels below the maximum (numpy, independent)."""
    srt = np.sort(v)
    return np.searchsorted(srt, v, side="left"), int(np.searchsorted(srt, srt[-1], side="left"))


def test_float_equalize_maps_values_to_their_rank():
    """Float equalize is PIL's formula without its integer step: the fraction of pixels below,
    ranked at 12-bit precision."""
    x = torch.rand(1, 2, 30, 40, generator=torch.Generator().manual_seed(10)) ** 2
    x[0, 0, :3] = 1.0  # ties at the maximum
    out = F.equalize(x)
    for c in range(2):
        below, non_max = _rank_reference(np.round(x[0, c].flatten().numpy().astype(np.float64) * 4095))
        assert np.allclose(out[0, c].flatten().numpy(), np.minimum(below / non_max, 1.0), atol=1e-6)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


@pytest.mark.parametrize("top", [4095, 65535])  # narrow span: histogram path; full range: sort path
def test_uint16_equalize_matches_rank_formula(top):
    g = torch.Generator().manual_seed(11)
    x = torch.randint(0, top + 1, (2, 1, 40, 30), generator=g, dtype=torch.int32).to(torch.uint16)
    out = F.equalize(x).to(torch.int32)
    for i in range(2):
        below, non_max = _rank_reference(x[i, 0].to(torch.int32).flatten().numpy())
        ref = np.floor(below * (65535.0 / non_max) + 0.5)
        assert np.array_equal(out[i, 0].flatten().numpy(), ref.astype(np.int64))


def test_uint16_equalize_sort_path_keeps_constant_channels():
    x = torch.randint(0, 65536, (1, 2, 20, 20), generator=torch.Generator().manual_seed(12), dtype=torch.int32)
    x[0, 1] = 777  # a constant channel beside a full-range one (which takes the sort path)
    out = F.equalize(x.to(torch.uint16)).to(torch.int32)
    assert bool((out[0, 1] == 777).all()) and int(out[0, 0].max()) == 65535


def test_equalize_leaves_constant_channels():
    for x in (torch.full((1, 1, 5, 5), 7, dtype=torch.uint8), torch.full((1, 1, 5, 5), 0.3), torch.full((1, 1, 5, 5), 300, dtype=torch.int32).to(torch.uint16)):
        assert torch.equal(F.equalize(x).view(torch.int8 if x.dtype == torch.uint8 else x.dtype if x.dtype.is_floating_point else torch.int16), x.view(torch.int8 if x.dtype == torch.uint8 else x.dtype if x.dtype.is_floating_point else torch.int16))


def test_uint16_autocontrast_and_posterize_keep_16_bits():
    x = (torch.arange(1000, 3000, dtype=torch.int32).view(1, 1, 40, 50)).to(torch.uint16)
    out = F.autocontrast(x).to(torch.int32)
    assert int(out.min()) == 0 and int(out.max()) == 65535
    assert torch.unique(out).numel() == 2000  # an 8-bit cast would leave at most 256 levels
    p = F.posterize(x, 12).to(torch.int32)  # keep 12 of 16 bits
    assert torch.equal(p, x.to(torch.int32) & 0xFFF0)
    assert torch.unique(p).numel() > 100


def test_uint16_photometric_ops_round_trip_range():
    x = _u16((1, 4, 9, 9))
    for out in (F.invert(x), F.solarize(x, 0.3), F.adjust_brightness(x, 1.4), F.adjust_contrast(x, 1.3), F.adjust_sharpness(x, 2.0), F.gaussian_blur(x, 1.0)):
        assert out.dtype == torch.uint16
    assert torch.equal(F.invert(F.invert(x)).view(torch.int16), x.view(torch.int16))


def test_saturation_is_identity_without_three_channels():
    for c in (1, 2, 4):
        x = torch.rand(1, c, 5, 5)
        assert torch.equal(F.adjust_saturation(x, 0.1), x)


def test_cutout_fill_and_labels():
    x = torch.full((1, 1, 6, 6), 100, dtype=torch.uint8)
    x[..., 0, 0] = 0
    out = F.cutout(x, (1, 1, 4, 3), fill=0.0)
    assert int((out == 0).sum()) == 1 + 3 * 2
    out = F.cutout(x, (1, 1, 4, 3), fill="mean")
    assert int(out[0, 0, 1, 1]) == round((35 * 100) / 36)
    lab = torch.ones(1, 6, 6, dtype=torch.int64)
    assert int(F.cutout_labels(lab, (1, 1, 4, 3)).sum()) == 36 - 6
