"""The fast paths of the integer photometric kernels (per-sample loops over large planes, the
float -> uint8 rounding by addition) give exactly what the batched plain formula gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.dtypes import from_float, from_work
from iaaa.ops import functional as F
from iaaa.ops import photometric


def _image(dtype, shape, seed, hi=None):
    g = torch.Generator().manual_seed(seed)
    top = hi or (256 if dtype == torch.uint8 else 65536)
    x = torch.randint(0, top, shape, generator=g, dtype=torch.int32)
    return x.to(dtype)


def _direct(fn, *args):
    """``fn`` with the per-sample path switched off: the batched formula."""
    old = photometric._PER_SAMPLE_MIN_PIXELS
    photometric._PER_SAMPLE_MIN_PIXELS = 1 << 62
    try:
        return fn(*args)
    finally:
        photometric._PER_SAMPLE_MIN_PIXELS = old


KERNELS = {
    "brightness": lambda x, f: F.adjust_brightness(x, f),
    "contrast": lambda x, f: F.adjust_contrast(x, f),
    "autocontrast": lambda x, f: F.autocontrast(x),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("dtype,shape", [(torch.uint8, (3, 1, 40, 40)), (torch.uint8, (2, 3, 33, 40)), (torch.uint8, (2, 4, 32, 40)), (torch.uint8, (3, 1, 260, 260)), (torch.uint16, (2, 2, 256, 520))])
def test_per_sample_path_equals_batched_formula(kernel, dtype, shape):
    fn = KERNELS[kernel]
    for seed, hi in ((0, None), (1, 37 if dtype == torch.uint8 else 4096)):
        x = _image(dtype, shape, seed, hi)
        for f in (0.0, 0.5, 1.0, 1.37, torch.tensor([0.6, 1.5, 1.0][: shape[0]] + [1.2] * max(0, shape[0] - 3), dtype=torch.float64)):
            fast = fn(x, f)
            slow = _direct(fn, x, f)
            assert fast.dtype == x.dtype and torch.equal(fast.to(torch.int32), slow.to(torch.int32)), (kernel, f)


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), c=st.sampled_from([1, 3]), f=st.floats(0, 2), seed=st.integers(0, 99))
def test_uint8_kernels_round_half_to_even_and_saturate(b, c, f, seed):
    # Ties: x * f = k + 0.5 (f = 1.5, 0.5, ... are drawn often) round half to even, values past
    # 255 saturate: the plain float formula, rounded by torch.round and cast.
    x = _image(torch.uint8, (b, c, 32, 32), seed)
    ff = torch.tensor(f, dtype=torch.float32)
    want = (x.to(torch.float32) * ff).round_().clamp_(0, 255).to(torch.uint8)
    assert torch.equal(F.adjust_brightness(x, f), want)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-300, 600, width=32), min_size=1, max_size=64), halves=st.lists(st.integers(-5, 300), max_size=32))
def test_uint8_rounding_by_addition_equals_round_and_cast(values, halves):
    """``from_work`` / ``from_float`` round float32 to uint8 by adding 2**23: the same values as
    ``round_`` (half to even) + ``clamp_`` + cast, exact ties and out-of-range values included."""
    x = torch.tensor(values + [h + 0.5 for h in halves] + [-0.0, 0.49999997, 254.5, 255.49998], dtype=torch.float32)
    want = x.clone().round_().clamp_(0, 255).to(torch.uint8)
    assert torch.equal(from_work(x.clone(), torch.uint8), want)
    assert torch.equal(from_work(x.clone(), torch.uint8, saturate=False)[(x >= 0) & (x <= 255)], want[(x >= 0) & (x <= 255)])
    unit = x / 255.0
    assert torch.equal(from_float(unit, torch.uint8), (unit.clamp(0, 1) * 255.0).round_().to(torch.uint8))
    # In place on the caller's temporary (the compositor's composite): the same values; the
    # default leaves its input as it was.
    before = unit.clone()
    for dtype in (torch.uint8, torch.uint16):
        assert torch.equal(from_float(unit.clone(), dtype, inplace=True), from_float(unit, dtype))
    assert torch.equal(unit, before)


# ----------------------------------------------------------------------------- single values
# One-sample calls take Python-float routes (parameter checks, draws, Posterize's mask) instead
# of numpy's; they must give exactly what the per-sample (array) routes give.


@settings(max_examples=40, deadline=None)
@given(f=st.floats(0, 3) | st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.5]), seed=st.integers(0, 99))
def test_one_parameter_value_in_any_form_gives_the_same_output(f, seed):
    # A Python float, a 1-element float64 tensor or array, a list and a per-sample tensor of
    # equal values all reach the kernels as the same float64 value.
    x = _image(torch.uint8, (2, 1, 9, 11), seed)
    want = F.adjust_contrast(x, torch.tensor([f, f], dtype=torch.float64))
    for v in (f, torch.tensor([f], dtype=torch.float64), torch.tensor(f, dtype=torch.float64), np.array([[f]]), [f]):
        assert torch.equal(F.adjust_contrast(x, v), want), type(v)
    f32 = float(np.float32(f))  # a float32 tensor gives its own (rounded) value, exactly
    assert torch.equal(F.adjust_contrast(x, torch.tensor([f], dtype=torch.float32)), F.adjust_contrast(x, f32))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_one_parameter_value_errors_match(bad):
    from iaaa.errors import IaaaError

    x = _image(torch.uint8, (3, 1, 4, 4), 0)
    msgs = set()
    for v in (bad, torch.tensor([bad]), np.array([bad]), [bad]):
        with pytest.raises(IaaaError) as e:
            F.adjust_brightness(x, v)
        msgs.add(str(e.value))
    assert msgs == {f"factor: values must be finite, got [{bad}]"}


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from([torch.uint8, torch.uint16]), bits=st.floats(-0.49, 16.49), seed=st.integers(0, 99))
def test_posterize_one_value_equals_per_sample_route(dtype, bits, seed):
    from iaaa.errors import IaaaError

    x = _image(dtype, (2, 1, 9, 11), seed)
    depth = 8 if dtype == torch.uint8 else 16
    try:
        fast = F.posterize(x, bits)
    except IaaaError as e:
        assert round(bits) > depth and str(e) == f"bits: must be in [0, {depth}] for {dtype}, got [{float(round(bits))}]"
        return
    # Two values force the general route (a per-sample mask tensor); sample 1 gets 'depth' bits.
    slow = F.posterize(x, torch.tensor([bits, depth], dtype=torch.float64))
    assert fast.dtype == dtype and torch.equal(fast[:1].to(torch.int32), slow[:1].to(torch.int32))


@settings(max_examples=30, deadline=None)
@given(m=st.floats(0, 1), m2=st.floats(0, 1), seed=st.integers(0, 2**31), sign=st.sampled_from([None, 1.0, -1.0]))
def test_one_sample_draw_equals_first_row_of_a_batch_draw(m, m2, seed, sign):
    from iaaa.ops import SPACE

    for spec in SPACE.values():
        cls = spec.cls
        s1 = None if sign is None else np.array([sign])
        s2 = None if sign is None else np.array([sign, -sign])
        p1, r1 = cls.draw(np.array([m]), torch.Generator().manual_seed(seed), s1)
        p2, r2 = cls.draw(np.array([m, m2]), torch.Generator().manual_seed(seed), s2)
        assert p1.shape == (1,) and r1.shape == (1, cls.n_random)
        assert p1.tobytes() == p2[:1].tobytes() and r1.tobytes() == r2[:1].tobytes(), spec.name


@settings(max_examples=40, deadline=None)
@given(removed=st.floats(-3, 12) | st.sampled_from([0.5, 1.5, 2.5, 3.75, float("inf"), -float("inf")]), seed=st.integers(0, 99))
def test_posterize_transform_one_value_equals_array_route(removed, seed):
    from iaaa.ops.transforms import Posterize

    for dtype in (torch.uint8, torch.uint16, torch.float32):
        x = _image(torch.uint8, (2, 1, 8, 8), seed).to(dtype) if dtype != torch.float32 else torch.rand(2, 1, 8, 8)
        fast = Posterize.apply_image(x[:1], {"removed": np.array([removed])}, {})
        slow = Posterize.apply_image(x, {"removed": np.array([removed, 0.0])}, {})
        assert torch.equal(fast, slow[:1]), (dtype, removed)


@settings(max_examples=150, deadline=None)
@given(
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)), out=st.tuples(st.integers(1, 50), st.integers(1, 50)),
    scale=st.tuples(st.sampled_from([-2.0, -1.0, -0.5, 0.37, 0.5, 1.0, 1.5, 2.0, 3.1]), st.sampled_from([-1.5, -1.0, 0.25, 0.5, 1.0, 2.0, 2.5])),
    shift=st.tuples(st.integers(-20, 60), st.integers(-20, 60)), half=st.booleans(), n=st.integers(1, 3), offset=st.booleans(), seed=st.integers(0, 99),
    host=st.booleans(),
)
def test_axis_aligned_nearest_equals_the_per_pixel_table(size, out, scale, shift, half, n, offset, seed, host):
    # Scale-and-shift warps (Resize, RandomScale's labels) gather by one row and one column
    # index per output line; the per-pixel table is the general path. Half-pixel shifts put
    # positions on rounding ties, out-of-range shifts leave the input. `host`: small outputs
    # gather in NumPy, the others by torch gathers; both paths are held to the table.
    from iaaa.ops import geometric

    limit = geometric._HOST_GATHER_MAX
    geometric._HOST_GATHER_MAX = limit if host else -1
    try:
        _check_axis_aligned(size, out, scale, shift, half, n, offset, seed)
    finally:
        geometric._HOST_GATHER_MAX = limit


def _check_axis_aligned(size, out, scale, shift, half, n, offset, seed):
    from iaaa.ops._warp import Warp, nearest_tables
    from iaaa.ops.geometric import _nearest, warp_labels

    m = np.zeros((n, 2, 3))
    m[:, 0, 0], m[:, 1, 1] = scale[0] * np.linspace(1, 1.3, n), scale[1]
    m[:, 0, 2], m[:, 1, 2] = shift[0] / (2 if half else 3), shift[1] / 2
    off = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float64) if offset else None
    w = Warp(m, size, out, off)
    x = torch.from_numpy(np.random.default_rng(seed).integers(0, 1000, (n, 2, *size)))
    flat, ok = nearest_tables(Warp(m, size, out, off), x.device)
    want = x.reshape(n, 2, -1).gather(-1, flat.view(n, 1, -1).expand(n, 2, -1)).view(n, 2, *out)
    want = want if ok is None else want.masked_fill_(~ok.unsqueeze(1), -7)
    assert torch.equal(_nearest(x, w, -7), want)
    assert torch.equal(warp_labels(x[:, 0], Warp(m, size, out, off)), want[:, 0].masked_fill(want[:, 0] == -7, 0))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3), size=st.tuples(st.integers(1, 30), st.integers(1, 30)), out=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    seed=st.integers(0, 999), halves=st.booleans(), offset=st.booleans(),
)
def test_positions_plane_by_plane_equal_the_interleaved_add(n, size, out, seed, halves, offset):
    # Large canvases compute warp positions as two planes, small ones by one add over the
    # interleaved layout; both must give the same grid and nearest tables to the bit.
    from iaaa.ops import _warp
    from iaaa.ops._warp import Warp, nearest_tables, sampling_grid

    rng = np.random.default_rng(seed)
    m = rng.normal(0, 1.5, (n, 2, 3))
    m[:, :, 2] = rng.uniform(-10, 40, (n, 2))
    if halves:
        m = np.round(m * 2) / 2  # positions on rounding ties
    off = rng.integers(-3, 4, (n, 2)).astype(np.float64) if offset else None
    got, saved = {}, _warp._PLANES_FROM
    try:
        for planes_from in (0, 1 << 40):
            _warp._PLANES_FROM = planes_from
            w = Warp(m, size, out, off)
            flat, ok = nearest_tables(w, torch.device("cpu"))
            got[planes_from] = (sampling_grid(w, torch.device("cpu")), flat, ok, torch.stack(_warp._affine_planes(m, w, torch.device("cpu")), -1))
    finally:
        _warp._PLANES_FROM = saved
    (g0, f0, ok0, p0), (g1, f1, ok1, p1) = got.values()
    assert torch.equal(g0, g1) and torch.equal(f0, f1) and torch.equal(p0, p1)
    assert (ok0 is None and ok1 is None) or torch.equal(ok0, ok1)


@settings(max_examples=120, deadline=None)
@given(
    size=st.tuples(st.integers(1, 60), st.integers(1, 60)), factor=st.floats(0.2, 3.0), aspect=st.floats(0.7, 1.4),
    n=st.integers(1, 3), dtype=st.sampled_from([torch.int64, torch.int32, torch.uint8, torch.bool]), seed=st.integers(0, 99),
)
def test_resized_labels_on_host_equal_the_warp_path(size, factor, aspect, n, dtype, seed):
    # resize_labels' small-map path (cached row / column tables, NumPy gather) against
    # warp_labels through resize_warp, the general path: same elements, same dtype.
    from iaaa.ops.geometric import resize_warp, resized_labels_on_host, warp_labels

    out = (max(1, round(size[0] * factor)), max(1, round(size[1] * factor * aspect)))
    lab = torch.from_numpy(np.random.default_rng(seed).integers(0, 6, (n, *size))).to(dtype)
    from iaaa.ops import geometric

    want = warp_labels(lab, resize_warp(size, out))
    got = resized_labels_on_host(lab, out)
    if n * out[0] * out[1] > geometric._HOST_GATHER_MAX:
        assert got is None  # torch's gathers win there: the general path
    else:
        assert got is not None and got.dtype == want.dtype and torch.equal(got, want)
    assert torch.equal(F.resize_labels(lab[0], out), want[0])


def test_resized_labels_on_host_leaves_big_maps_and_bad_input_to_the_general_path():
    from iaaa.errors import IaaaError
    from iaaa.ops.geometric import resized_labels_on_host

    big = torch.zeros(1, 300, 300, dtype=torch.int64)
    assert resized_labels_on_host(big, (300, 300)) is None  # beyond the host gather's size
    assert F.resize_labels(big[0], (301, 299)).shape == (301, 299)
    with pytest.raises(TypeError, match="labels: label maps must be integer"):
        F.resize_labels(torch.zeros(8, 8), (4, 4))  # float labels: the general path's refusal
    with pytest.raises(IaaaError, match="out_size"):
        F.resize_labels(torch.zeros(8, 8, dtype=torch.int64), (0, 4))
