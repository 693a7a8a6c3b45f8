"""Nearest-neighbour warps stay exact at any size (issue 21, class 7).

Flat source indices were once computed in float32: above 2**24 pixels labels shifted by one
pixel, and canvases grown by large rotations or shears read out of bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.ops import apply_op
from iaaa.ops import functional as F

N = 4200  # 17.6 M pixels, above float32's 2**24 exact integers


@pytest.fixture(scope="module")
def big_labels():
    # uint8 keeps the test's memory modest (17.6 MB a map); neighbouring pixels differ, so a
    # one-pixel shift anywhere shows up.
    return (torch.arange(N * N, dtype=torch.int32) % 251).to(torch.uint8).view(1, N, N)


# A hair off a quarter turn: the general (non-separable) path, whose positions round to the
# same whole pixels as the exact quarter turn.
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("eps", [0.0, 1e-9])
def test_quarter_turns_of_a_huge_label_map_are_rot90(big_labels, k, eps):
    w = F.rotate_warp((N, N), 90.0 * k + eps)
    assert (w.separable() is None) == (eps != 0.0)
    out = F.warp_labels(big_labels, w)
    # Counter-clockwise on screen is torch.rot90 from the row axis towards the column axis.
    assert torch.equal(out[0], torch.rot90(big_labels[0], k, (0, 1)))


def test_flips_of_a_huge_label_map(big_labels):
    lab = big_labels.expand(2, N, N)  # a batch: the separable gather path, not the slice
    assert torch.equal(F.warp_labels(lab, F.flip_warp((N, N), True))[1], big_labels[0].flip(-1))
    assert torch.equal(F.warp_labels(big_labels, F.flip_warp((N, N), False))[0], big_labels[0].flip(-2))


def test_huge_image_and_labels_move_together(big_labels):
    """A non-separable batch (quarter turn next to 30 degrees) on the general path: sample 0 is
    the exact quarter turn for the label map and the nearest-sampled image alike."""
    n = 1200  # 1.4 M pixels, x2 samples: enough to exercise the batch path cheaply
    lab = big_labels[:, :n, :n].expand(2, n, n)
    img = lab.unsqueeze(1)
    w = F.rotate_warp((n, n), [90.0, 30.0])
    assert w.separable() is None
    out_lab = F.warp_labels(lab, w)
    out_img = F.warp_image(img, w, "nearest")
    ref = torch.rot90(lab[0], 1, (0, 1))
    assert torch.equal(out_lab[0], ref) and torch.equal(out_img[0, 0], ref)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 120),
    w=st.integers(1, 120),
    angle=st.floats(-720, 720, allow_nan=False),
    shear=st.floats(-40, 40, allow_nan=False),
    axis=st.sampled_from(["x", "y"]),
)
def test_expand_never_reads_out_of_bounds(h, w, angle, shear, axis):
    lab = torch.arange(1, h * w + 1, dtype=torch.int64).view(1, h, w)
    img = lab.to(torch.float32).unsqueeze(1)
    for warp in (F.rotate_warp((h, w), angle, expand=True), F.shear_warp((h, w), shear, axis, expand=True)):
        out = F.warp_labels(lab, warp)
        F.warp_image(img, warp)
        F.warp_image(img, warp, "nearest")
        vals = out.unique()
        # Nearest sampling invents no value.
        assert bool(torch.isin(vals[vals > 0], lab).all())


@pytest.mark.parametrize("shear", [-12.0, 7.5])
def test_large_sheared_canvas_with_expand(shear):
    """Strongly sheared canvases (coordinates in the thousands, where a fixed rounding margin
    can be crossed), a few million pixels at most."""
    h, w = 3, 600
    lab = torch.arange(1, h * w + 1, dtype=torch.int64).view(1, h, w)
    for axis in ("x", "y"):
        out = F.warp_labels(lab, F.shear_warp((h, w), shear, axis, expand=True))
        kept = out[out > 0]
        assert kept.numel() > 0 and kept.unique().numel() <= h * w


def test_batched_large_rotations_with_expand_via_apply_op():
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 65536, (5, 2, 257, 61), generator=g, dtype=torch.int32).to(torch.uint16)
    lab = torch.randint(0, 9, (5, 257, 61), generator=g)
    for name in ("Rotate", "ShearX", "ShearY", "Resize"):
        out, ol = apply_op(name, img, lab, torch.rand(5, generator=g, dtype=torch.float64), g, expand=True)
        assert ol.shape == out.shape[:1] + out.shape[2:]
        assert set(ol.unique().tolist()) <= set(lab.unique().tolist())


def test_positions_switch_to_float64_on_huge_canvases():
    """A 1 x 70000 strip rotated by a hair: float32 positions would be 1/128 px coarse there;
    float64 keeps the quarter-turn-like identity exact."""
    lab = (torch.arange(70000, dtype=torch.int64) % 251).view(1, 1, 70000)
    out = F.warp_labels(lab, F.rotate_warp((1, 70000), 1e-9))
    assert torch.equal(out, lab)
    assert np.isfinite(F.rotate_warp((1, 70000), 1e-9).matrix).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_huge_label_map_general_path_on_cuda(big_labels):
    w = F.rotate_warp((N, N), [90.0 + 1e-9])
    out = F.warp_labels(big_labels.cuda(), w)
    assert torch.equal(out[0].cpu(), torch.rot90(big_labels[0], 1, (0, 1)))
