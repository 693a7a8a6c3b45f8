"""The per-object warp's sampling grid (:func:`iaaa.synthesis.object_warp._sampling_grid`):
on the CPU its product runs in NumPy, elsewhere in torch; both must be the normalised output
pixel centres times ``theta`` (``affine_grid``'s convention), within float32 rounding."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.synthesis.object_policy import ObjectAugment
from iaaa.synthesis.object_warp import _sampling_grid


@settings(max_examples=80, deadline=None)
@given(ho=st.integers(1, 90), wo=st.integers(1, 90), rows=st.sampled_from([2, 3]), seed=st.integers(0, 999))
def test_sampling_grid_is_affine_grids_convention(ho, wo, rows, seed):
    theta = np.random.default_rng(seed).normal(size=(rows, 2)) * 2
    img = torch.zeros(1, 4, 4)
    got = _sampling_grid(theta.tolist(), ho, wo, img)
    # affine_grid builds the same centres: its theta is (2, 3) = [linear^T | offset]
    t = np.zeros((2, 3))
    t[:, :2] = theta[:2].T
    if rows == 3:
        t[:, 2] = theta[2]
    want = F.affine_grid(torch.tensor(t, dtype=torch.float64)[None], [1, 1, ho, wo], align_corners=False).float()
    assert got.shape == (1, ho, wo, 2) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # the torch path (any other dtype or device) gives the same grid
    other = _sampling_grid(theta.tolist(), ho, wo, img.double())
    assert other.dtype == torch.float64
    torch.testing.assert_close(other.float(), got, rtol=0, atol=1e-5)


def test_object_augment_moves_labels_with_the_image():
    # Through the NumPy grid: a bright square cell stays under its label after any draw.
    img = torch.zeros(1, 41, 37)
    lab = torch.zeros(41, 37, dtype=torch.int64)
    img[0, 10:25, 12:20] = 1.0
    lab[10:25, 12:20] = 1
    aug = ObjectAugment(brightness=0.0, contrast=0.0)
    for seed in range(20):
        out, out_lab = aug(img, lab, torch.Generator().manual_seed(seed))
        assert out.shape[-2:] == out_lab.shape
        inside = out[0][out_lab == 1]
        assert inside.numel() > 0 and float(inside.mean()) > 0.7
        assert float(out[0][out_lab == 0].mean()) < 0.2


def test_base_grid_cache_is_bounded_in_bytes(monkeypatch):
    from iaaa.synthesis import object_warp

    monkeypatch.setattr(object_warp, "_GRID_CACHE_BYTES", 1 << 20)
    for n in range(100, 180):
        g = object_warp._base_grid(n, n + 1)
        assert g.shape == (n, n + 1, 2) and not g.flags.writeable
    held = sum(v.nbytes for v in object_warp._grid_cache.values())
    assert held == object_warp._grid_cache_bytes <= 1 << 20
    assert object_warp._base_grid(179, 180) is object_warp._base_grid(179, 180)  # the newest stays
