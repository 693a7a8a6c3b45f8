"""The fast paths of the integer photometric kernels (uint8 look-up tables, per-sample loops over
large planes) give exactly what the batched formula gives."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.ops import functional as F
from iaaa.ops import photometric


def _image(dtype, shape, seed, hi=None):
    g = torch.Generator().manual_seed(seed)
    top = hi or (256 if dtype == torch.uint8 else 65536)
    x = torch.randint(0, top, shape, generator=g, dtype=torch.int32)
    return x.to(dtype)


def _direct(fn, *args):
    """``fn`` with the table and per-sample paths switched off: the batched formula."""
    old = photometric._LUT_MIN_PIXELS_PER_LEVEL, photometric._PER_SAMPLE_MIN_PIXELS
    photometric._LUT_MIN_PIXELS_PER_LEVEL, photometric._PER_SAMPLE_MIN_PIXELS = {}, 1 << 62
    try:
        return fn(*args)
    finally:
        photometric._LUT_MIN_PIXELS_PER_LEVEL, photometric._PER_SAMPLE_MIN_PIXELS = old


KERNELS = {
    "brightness": lambda x, f: F.adjust_brightness(x, f),
    "contrast": lambda x, f: F.adjust_contrast(x, f),
    "autocontrast": lambda x, f: F.autocontrast(x),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("dtype,shape", [(torch.uint8, (3, 1, 40, 40)), (torch.uint8, (2, 3, 33, 40)), (torch.uint8, (2, 4, 32, 40)), (torch.uint16, (2, 2, 256, 520))])
def test_table_path_equals_direct_formula(kernel, dtype, shape):
    fn = KERNELS[kernel]
    for seed, hi in ((0, None), (1, 37 if dtype == torch.uint8 else 4096)):
        x = _image(dtype, shape, seed, hi)
        for f in (0.0, 0.5, 1.0, 1.37, torch.tensor([0.6, 1.5, 1.0][: shape[0]] + [1.2] * max(0, shape[0] - 3), dtype=torch.float64)):
            fast = fn(x, f)
            slow = _direct(fn, x, f)
            assert fast.dtype == x.dtype and torch.equal(fast.to(torch.int32), slow.to(torch.int32)), (kernel, f)


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), c=st.sampled_from([1, 3]), f=st.floats(0, 2), seed=st.integers(0, 99))
def test_table_path_half_levels_round_like_the_formula(b, c, f, seed):
    # Ties: x * f = k + 0.5 rounds half to even in both paths.
    x = _image(torch.uint8, (b, c, 32, 32), seed)
    for fn in (F.adjust_brightness, F.adjust_contrast):
        assert torch.equal(fn(x, f), _direct(fn, x, f))
