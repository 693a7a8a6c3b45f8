"""Alignment rules of the ops, checked with hypothesis for every op in the search space.

Random sizes, dtypes, channel counts, batch sizes, magnitudes and ``expand``; each rule is one
test parametrised over all 20 ops.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iaaa.ops import SPACE, apply_op
from iaaa.ops import functional as F

OPS = list(SPACE)
GEOMETRIC = [n for n, s in SPACE.items() if s.geometric]
PHOTOMETRIC = [n for n, s in SPACE.items() if not s.geometric]
WITH_MAGNITUDE = [n for n, s in SPACE.items() if s.has_magnitude]
CONVOLVED = {"Smooth", "Resize"}  # Gaussian blur (Resize: antialiasing before downscaling)
DTYPES = [torch.uint8, torch.uint16, torch.float32]
MAX = {torch.uint8: 255, torch.uint16: 65535}

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@st.composite
def samples(draw, batched: bool | None = None, min_side: int = 1):
    """``(image, labels, magnitude, seed, expand)`` with a random label map of a few blobs."""
    b = draw(st.integers(1, 3)) if batched or (batched is None and draw(st.booleans())) else None
    h, w = draw(st.integers(min_side, 24)), draw(st.integers(min_side, 24))
    c = draw(st.sampled_from([1, 2, 3, 4]))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    shape = (c, h, w) if b is None else (b, c, h, w)
    x = torch.rand(shape, generator=g)
    image = x if dtype == torch.float32 else (x * MAX[dtype]).round().to(torch.int32).to(dtype)
    # Blocky instances with arbitrary (large, non-sequential) ids.
    ids = torch.tensor([0, 3, 17, 1000, 70000])
    cells = torch.randint(0, len(ids), (shape[:-3] + (max(1, h // 3), max(1, w // 3))), generator=g)
    labels = ids[cells].repeat_interleave(3, -2).repeat_interleave(3, -1)[..., :h, :w]
    labels = torch.nn.functional.pad(labels, (0, w - labels.shape[-1], 0, h - labels.shape[-2]))
    magnitude = draw(st.floats(0.0, 1.0))
    expand = draw(st.booleans())
    return image, labels, magnitude, seed, expand


def _run(name, image, labels, magnitude, seed, expand, **opts):
    return apply_op(name, image, labels, magnitude, torch.Generator().manual_seed(seed), expand=expand, **opts)


@pytest.mark.parametrize("name", OPS)
@SETTINGS
@given(s=samples())
def test_dtype_shape_and_no_invented_labels(name, s):
    image, labels, magnitude, seed, expand = s
    out, lab = _run(name, image, labels, magnitude, seed, expand)
    assert out.dtype == image.dtype
    assert lab.dtype == torch.int64
    assert out.ndim == image.ndim and lab.ndim == labels.ndim
    assert out.shape[:-2] == image.shape[:-2]
    assert out.shape[-2:] == lab.shape[-2:]
    assert set(torch.unique(lab).tolist()) <= set(torch.unique(labels).tolist()) | {0}
    if image.dtype.is_floating_point:
        assert bool(torch.isfinite(out).all())
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("name", PHOTOMETRIC)
@SETTINGS
@given(s=samples())
def test_photometric_ops_leave_labels_byte_identical(name, s):
    image, labels, magnitude, seed, expand = s
    out, lab = _run(name, image, labels, magnitude, seed, expand)
    assert out.shape == image.shape
    assert torch.equal(lab, labels)


@pytest.mark.parametrize("name", GEOMETRIC)
@SETTINGS
@given(s=samples())
def test_mask_follows_image(name, s):
    """Labels == the op applied to a float image holding the label values, nearest sampling."""
    image, labels, magnitude, seed, expand = s
    _, lab = _run(name, image, labels, magnitude, seed, expand)
    as_image = labels.to(torch.float32).unsqueeze(-3)  # exact: ids < 2**24
    opts = {"interpolation": "nearest"} if "interpolation" in SPACE[name].cls.default_options else {}
    moved, _ = _run(name, as_image, None, magnitude, seed, expand, **opts)
    assert torch.equal(moved.squeeze(-3).to(torch.int64), lab)


@pytest.mark.parametrize("name", GEOMETRIC)
@SETTINGS
@given(s=samples())
def test_geometric_image_support_matches_labels(name, s):
    """Where the output reads from outside the input, the image gets the fill and the label 0:
    a constant all-foreground object stays foreground exactly where the image is non-zero."""
    image, labels, magnitude, seed, expand = s
    ones = torch.full_like(image, 1 if not image.dtype.is_floating_point else 1.0)
    fg = torch.ones_like(labels)
    out, lab = _run(name, ones, fg, magnitude, seed, expand)
    assert torch.equal((out != 0).all(-3), lab == 1)


@pytest.mark.parametrize("name", WITH_MAGNITUDE)
@SETTINGS
@given(s=samples())
def test_magnitude_zero_is_identity(name, s):
    image, labels, _, seed, expand = s
    out, lab = _run(name, image, labels, 0.0, seed, expand)
    assert torch.equal(out, image)
    assert torch.equal(lab, labels)


@pytest.mark.parametrize("name", OPS)
@SETTINGS
@given(s=samples())
def test_same_seed_same_output(name, s):
    image, labels, magnitude, seed, expand = s
    a = _run(name, image, labels, magnitude, seed, expand)
    b = _run(name, image, labels, magnitude, seed, expand)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _crop_center(x, h, w):
    """The whole-pixel-centred ``(h, w)`` window of a larger batch canvas."""
    hc, wc = x.shape[-2:]
    t, l = (hc - h) // 2, (wc - w) // 2
    return x[..., t:t + h, l:l + w], (t, l)


@pytest.mark.parametrize("name", OPS)
@SETTINGS
@given(s=samples(batched=True), mags=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_batched_equals_loop_over_samples(name, s, mags):
    image, labels, _, seed, expand = s
    b = image.shape[0]
    m = torch.tensor(mags[:b], dtype=torch.float64)
    out, lab = _run(name, image, labels, m, seed, expand)
    g = torch.Generator().manual_seed(seed)
    for i in range(b):
        oi, li = apply_op(name, image[i], labels[i], float(m[i]), g, expand=expand)
        window, (t, l) = _crop_center(out[i], *oi.shape[-2:])
        lwindow = lab[i, t:t + li.shape[-2], l:l + li.shape[-1]]
        assert torch.equal(lwindow, li), f"sample {i}"
        if name in CONVOLVED:
            # A grouped convolution may take another algorithm for another group count.
            diff = (window.to(torch.float64) - oi.to(torch.float64)).abs()
            assert float(diff.max()) <= (1e-5 if image.dtype.is_floating_point else 1.0), f"sample {i}"
        else:
            assert torch.equal(window, oi), f"sample {i}"
        # Outside its own canvas a sample is padding: fill 0 and background.
        rest = out[i].clone()
        rest[..., t:t + oi.shape[-2], l:l + oi.shape[-1]] = 0
        assert not bool(rest.any())


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "ShearY", "Resize", "TranslateX", "TranslateY"])
@SETTINGS
@given(h=st.integers(1, 40), w=st.integers(1, 40), magnitude=st.floats(0.0, 1.0), sign=st.sampled_from([-1.0, 1.0]))
def test_expand_never_cuts_the_object(name, h, w, magnitude, sign):
    """With expand, the moved image rectangle lies inside the new canvas and touches all four
    sides of it (no wasted margin beyond the one pixel that rounding up can add); a crop whose
    every pixel is the object keeps its area up to nearest resampling at the edges."""
    obj = torch.ones(h, w, dtype=torch.int64)
    img = torch.ones(1, h, w)
    out, lab = apply_op(name, img, obj, magnitude, None, expand=True, sign=sign)
    ho, wo = lab.shape
    spec = SPACE[name]
    v = sign * spec.value(magnitude)
    warp = {
        "Rotate": lambda: F.rotate_warp((h, w), v, True),
        "ShearX": lambda: F.shear_warp((h, w), v, "x", True),
        "ShearY": lambda: F.shear_warp((h, w), v, "y", True),
        "Resize": lambda: F.scale_warp((h, w), 2.0**v, True),
        "TranslateX": lambda: F.translate_warp((h, w), v * w, "x", True),
        "TranslateY": lambda: F.translate_warp((h, w), v * h, "y", True),
    }[name]()
    assert warp.out_size == (ho, wo)
    # Corners of the input in edge coordinates -> pixel-centre coordinates of the output.
    corners = torch.tensor([[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]], dtype=torch.float64) - 0.5
    moved = F.warp_points(corners, warp) + 0.5
    eps = 1e-6
    assert float(moved[:, 0].min()) >= -eps and float(moved[:, 0].max()) <= wo + eps
    assert float(moved[:, 1].min()) >= -eps and float(moved[:, 1].max()) <= ho + eps
    if name.startswith("Translate"):
        # The canvas grows by exactly the shift, on the side the object moved away from.
        t = abs(round(v * (w if name.endswith("X") else h)))
        assert (ho, wo) == ((h, w + t) if name.endswith("X") else (h + t, w))
    else:
        assert float(moved[:, 0].max() - moved[:, 0].min()) > wo - 1 - eps
        assert float(moved[:, 1].max() - moved[:, 1].min()) > ho - 1 - eps
    area = int(lab.sum())
    if name == "Resize":
        assert area == ho * wo  # the scaled object fills its exact-size canvas
    else:
        assert abs(area - h * w) <= 2 * (h + w)  # nearest resampling changes only edge pixels
    assert torch.equal(out[0] != 0, lab == 1)
