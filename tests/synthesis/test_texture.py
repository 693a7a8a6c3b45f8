"""The shared texture/window engine (iaaa.synthesis.texture): its fast kernels against the
plain definitions they replaced (stride-1 pooling, padded Jacobi steps, a distance transform)."""

from __future__ import annotations

import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.synthesis.halo import dilate_disk
from iaaa.synthesis.inpaint import inpaint
from iaaa.synthesis.texture import _relax, box_mean, box_means_at, box_sum, integral_image, local_level, selection_quantile, usable_windows

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(9, 30), st.integers(9, 30), st.integers(0, 2**31 - 1))
def test_box_sum_is_stride_one_pooling(k, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, h, w, generator=g)
    want = F.avg_pool2d(x[None], k, 1)[0]
    assert torch.allclose(box_mean(x, k), want, atol=1e-6)
    m = x[0] > 0.3
    assert torch.equal(box_sum(m, k), (F.avg_pool2d(m.double()[None, None], k, 1)[0, 0] * k * k).round().int())


def test_box_sum_rejects_a_window_larger_than_the_image():
    with pytest.raises(IaaaError, match="k: window side"):
        box_sum(torch.zeros(4, 5), 6)


def test_usable_windows_halves_until_enough_fit():
    src = torch.zeros(40, 40, dtype=torch.bool)
    src[:6, :6] = True  # one 6x6 free corner: 9 windows of side 4, 25 of side 2, 1 of side 6
    k, ok = usable_windows(src, 8, 9, side=lambda k: 2 * k)
    assert k == 2 and int(ok.sum()) == 9
    k, ok = usable_windows(src, 8, 10, side=lambda k: 2 * k)
    assert k == 1 and int(ok.sum()) == 25
    assert usable_windows(src, 8, 26, side=lambda k: 2 * k) == (0, None)
    k, ok = usable_windows(src, 8, 9, lowest=2)  # side = k, never below 2
    assert k == 4 and int(ok.sum()) == 9


def _relax_reference(level, fixed, steps):
    free = ~fixed
    for _ in range(steps):
        p = F.pad(level[None], (1, 1, 1, 1), mode="replicate")[0]
        nb = 0.25 * (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:])
        level = torch.where(free, nb, level)
    return level


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 24), st.integers(2, 24), st.integers(1, 30), st.sampled_from([0.02, 0.1, 0.19, 0.5, 0.9]), st.integers(0, 2**31 - 1))
def test_relax_matches_padded_jacobi_steps(h, w, steps, free_share, seed):
    # Free shares on both sides of the sparse path's threshold: both paths give the same bits.
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(2, h, w, generator=g)
    fixed = torch.rand(h, w, generator=g) >= free_share
    assert torch.equal(_relax(level, fixed, steps), _relax_reference(level, fixed, steps))


def test_relax_sparse_path_keeps_fixed_pixels_and_borders():
    # A few free pixels on the border and corners (the replicate padding) of a larger level.
    g = torch.Generator().manual_seed(3)
    level = torch.rand(3, 40, 50, generator=g)
    fixed = torch.ones(40, 50, dtype=torch.bool)
    fixed[0, 0] = fixed[39, 49] = fixed[0, 20] = fixed[20, 0] = fixed[10:13, 10:14] = False
    out = _relax(level, fixed, 17)
    assert torch.equal(out, _relax_reference(level, fixed, 17))
    assert torch.equal(out[:, fixed], level[:, fixed])
    assert not torch.equal(out[:, ~fixed], level[:, ~fixed])


def test_local_level_is_a_normalised_convolution():
    x = torch.full((1, 32, 32), 0.25)
    x[:, :, 16:] = 0.75
    w = torch.ones(32, 32, dtype=torch.bool)
    w[10:20, 10:20] = False
    level, support = local_level(x, w, 2.0)
    # Far from the step, only equal values are averaged, whatever the weight's hole.
    assert torch.allclose(level[:, :, :6], torch.full((1, 32, 6), 0.25), atol=1e-6)
    assert torch.allclose(level[:, :, -6:], torch.full((1, 32, 6), 0.75), atol=1e-6)
    assert float(support[15, 15]) < float(support[0, 0])
    coarse, _ = local_level(x, w, 4.0, factor=2)
    assert coarse.shape == x.shape and float((coarse - level).abs()[:, :, :4].max()) < 0.02


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_inpaint_margin_is_the_distance_band(margin, seed):
    # The reference pixels exclude exactly the known pixels within `margin` (Euclidean) of a hole.
    g = torch.Generator().manual_seed(seed)
    hole = torch.rand(48, 48, generator=g) > 0.97
    img = torch.rand(1, 48, 48, generator=g)
    r = inpaint(img, hole, margin=margin, generator=torch.Generator().manual_seed(0))
    near = torch.from_numpy(ndi.distance_transform_edt(~hole.numpy()) <= margin)
    want = ~hole & ~near
    if int(want.sum()) >= max(64, 0.25 * int((~hole).sum())):
        assert torch.equal(r.reference, want)
    assert torch.equal(dilate_disk(hole, margin), near)


@settings(max_examples=30, deadline=None)
@given(st.integers(24, 90), st.integers(24, 90), st.sampled_from([1, 3]), st.sampled_from([2, 4, 8]), st.floats(0.02, 0.4), st.integers(0, 2**31 - 1))
def test_overlap_add_in_bands_is_the_one_call_field(h, w, c, block, share, seed):
    # The texture blocks are folded a band of block rows at a time (bounded memory); each band
    # folds every block that reaches its rows, so the fill equals one fold over the whole grid.
    from iaaa.synthesis import inpaint as inpaint_module

    g = torch.Generator().manual_seed(seed)
    img = torch.rand(c, h, w, generator=g)  # float: the fill is compared before any rounding
    hole = F.max_pool2d((torch.rand(1, 1, h, w, generator=g) < share / 9).float(), 3, 1, 1)[0, 0] > 0
    if not bool(hole.any()) or bool(hole.all()):
        return
    runs = {}
    for budget in (1, 3 * 16 * 16 * 12, 1 << 40):  # a band per block row, a few rows, one band
        old = inpaint_module._FOLD_VALUES
        inpaint_module._FOLD_VALUES = budget
        try:
            runs[budget] = inpaint(img, hole, block=block, generator=torch.Generator().manual_seed(seed % 97))
        finally:
            inpaint_module._FOLD_VALUES = old
    one = runs[1 << 40]
    for r in runs.values():
        assert torch.equal(r.image, one.image) and r.block == one.block
    assert torch.equal(one.image[:, ~hole], img[:, ~hole])


def test_inpaint_rejects_a_fractional_margin():
    with pytest.raises(IaaaError, match="integer margin"):
        inpaint(torch.rand(1, 16, 16), torch.zeros(16, 16, dtype=torch.bool), margin=1.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_quantile_by_selection_is_torch_quantile(n, q, seed):
    # The residual-energy cut of texture_residual and the level's robust spread: same values as
    # sorting, ties and n = 1 included; "lower" at 0.5 is torch.median's value.
    g = torch.Generator().manual_seed(seed)
    v = (torch.rand(n, generator=g) * 8).floor() / 8 if seed % 2 else torch.rand(n, generator=g) ** 3
    assert torch.equal(selection_quantile(v, q), torch.quantile(v.double(), q))
    assert torch.equal(selection_quantile(v, q, "lower"), torch.quantile(v.double(), q, interpolation="lower"))
    assert float(selection_quantile(v.reshape(1, -1), 0.5, "lower")) == float(v.median())
    with pytest.raises(IaaaError, match="interpolation"):
        selection_quantile(v, q, "nearest")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(9, 40), st.integers(9, 40), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_candidate_window_means_are_box_means(b, h, w, c, seed):
    # Sparse holes read the level means of their candidate windows alone: the same floats as
    # every window's box mean.
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(c, h, w, generator=g) * 3 - 1
    integral = integral_image(level)
    assert torch.equal(integral, F.pad(level.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0)))
    y = torch.randint(h - b + 1, (7, 5), generator=g)
    x = torch.randint(w - b + 1, (7, 5), generator=g)
    got = box_means_at(integral, b, y, x, level.dtype)
    assert got.shape == (7, 5, c)
    assert torch.equal(got, box_mean(level, b)[:, y, x].movedim(0, -1))


def test_window_counts_are_exact_int32_and_integer_sums_int64():
    m = torch.zeros(40, 50, dtype=torch.bool)
    m[5:25, 10:30] = True
    counts = box_sum(m, 20)
    assert counts.dtype == torch.int32 and int(counts.max()) == 400 and int(counts[5, 10]) == 400
    assert box_sum(m.to(torch.int64) * 70000, 20).dtype == torch.int64
    assert int(box_sum(m.to(torch.int64) * 70000, 20).max()) == 400 * 70000


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([torch.bool, torch.uint8, torch.int64, torch.float16, torch.bfloat16, torch.float32, torch.float64]), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2), st.booleans(), st.integers(0, 2**31 - 1))
def test_integral_image_is_torchs_running_sums_for_every_dtype(dtype, h, w, lead, strided, seed):
    # The CPU path sums in NumPy, in place into the padded result: the same values as torch's
    # two cumsums in the accumulator box_sum documents, the input untouched, strided inputs too.
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*([2] * lead), h, 2 * w if strided else w, generator=g) * 300 - 40
    x = (x > 100) if dtype == torch.bool else x.clamp_min(0).to(dtype) if dtype == torch.uint8 else x.to(dtype)
    if strided:
        x = x[..., ::2]
    before = x.clone()
    acc = torch.int32 if dtype == torch.bool else torch.float64 if dtype.is_floating_point else torch.int64
    want = F.pad(x.to(acc).cumsum(-1, dtype=acc).cumsum(-2, dtype=acc), (1, 0, 1, 0))
    got = integral_image(x)
    assert got.dtype == acc and torch.equal(got, want)
    assert torch.equal(x, before)
