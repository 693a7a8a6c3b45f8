"""``object_warp="fused"``: the resize and the default policy as one resampling over the window
placement reads (:func:`iaaa.synthesis.object_warp.warp_within_reach`), against the plain
steps: the same random draws, whole-pixel moves exact, labels moved with their pixels, the
mask and its reach inside the window, and the compositor / ``PasteCells`` choosing it by
config only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa import CellCompositor, CompositorConfig, PasteCells
from iaaa.datasets import simulate_cells
from iaaa.synthesis import object_warp
from iaaa.synthesis.footprints import footprints
from iaaa.synthesis.object_policy import ObjectAugment, RandomScale
from iaaa.synthesis.object_warp import separate_within_reach, warp_within_reach


class _Fixed(ObjectAugment):
    """An ObjectAugment whose draw is given (still consumes the six uniforms)."""

    def __init__(self, fx: float, fy: float, angle: float, s: float, bf: float = 1.0, cf: float = 1.0) -> None:
        super().__init__()
        self.params = (fx, fy, angle, s, bf, cf)

    def draw(self, generator: torch.Generator):
        super().draw(generator)
        return self.params


def _object(seed: int, h: int, w: int, cells: int = 2):
    """A float crop with a few rectangular cells away from its border, and its labels."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), dtype=np.int64)
    for k in range(1, cells + 1):
        # cell k in its own (k * h/4, k * w/4) block: rectangles that never overlap
        y0 = k * (h // 4) + rng.integers(0, max(1, h // 8))
        x0 = k * (w // 4) + rng.integers(0, max(1, w // 8))
        lab[y0 : y0 + rng.integers(2, h // 8 + 3), x0 : x0 + rng.integers(2, w // 8 + 3)] = k
    img = rng.random((2, h, w)).astype(np.float32)
    return torch.from_numpy(img), torch.from_numpy(lab)


def _find(full_lab: torch.Tensor, full: torch.Tensor, lab: torch.Tensor, img: torch.Tensor) -> bool:
    """Whether ``(lab, img)`` is a window of ``(full_lab, full)`` zero-padded on every side:
    labels equal, image within float rounding."""
    p = max(lab.shape) + 1
    fl = torch.nn.functional.pad(full_lab, (p, p, p, p))
    fi = torch.nn.functional.pad(full, (p, p, p, p))
    h, w = lab.shape
    for y in range(fl.shape[0] - h + 1):
        for x in range(fl.shape[1] - w + 1):
            if torch.equal(fl[y : y + h, x : x + w], lab) and torch.allclose(fi[:, y : y + h, x : x + w], img, atol=1e-5, rtol=0):
                return True
    return False


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3), st.booleans(), st.booleans(), st.integers(0, 6))
def test_whole_pixel_moves_are_the_full_warp_cut_to_the_window(seed: int, quarter: int, fx: bool, fy: bool, reach: int) -> None:
    # Flips and quarter turns of an even-sized crop map pixel centres onto pixel centres: the
    # window is then exactly a piece of the whole moved crop, labels and image together.
    img, lab = _object(seed, 24, 32)
    pol = _Fixed(-1.0 if fx else 1.0, -1.0 if fy else 1.0, quarter * math.pi / 2, 1.0)
    out, out_lab = warp_within_reach(img, lab, pol, None, reach, torch.Generator().manual_seed(0))
    full_lab = lab.flip([d for d, f in ((-1, fx), (-2, fy)) if f])
    full = img.flip([d for d, f in ((-1, fx), (-2, fy)) if f])
    # angle > 0 turns counter-clockwise in the forward map x' = R x (image y down): rot90 by -k.
    full_lab, full = torch.rot90(full_lab, -quarter, (-2, -1)), torch.rot90(full, -quarter, (-2, -1))
    assert _find(full_lab, full, out_lab, out)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(-math.pi, math.pi), st.floats(0.4, 2.5), st.integers(0, 8), st.integers(12, 60), st.integers(12, 60))
def test_window_holds_the_mask_and_its_reach_with_labels_on_their_pixels(seed: int, angle: float, s: float, reach: int, h: int, w: int) -> None:
    img, lab = _object(seed, h, w)
    # Each cell carries its own constant intensity, so where a label lands its pixel must be
    # that cell's value (bilinear mixes only at the cell's edge).
    levels = torch.tensor([0.0, 0.3, 0.8])
    img = levels[lab].expand(1, h, w).clone()
    pol = _Fixed(1.0, -1.0, angle, 1.0)
    out, out_lab = warp_within_reach(img, lab, pol, RandomScale((s, s)), reach, torch.Generator().manual_seed(seed))
    fg = out_lab > 0
    # Every cell at least 2 px a side after the shrink survives nearest sampling (a smaller
    # one may fall between output pixel centres, as in any resize).
    for k in (1, 2):
        ys, xs = torch.nonzero(lab == k, as_tuple=True)
        if len(ys) and min(int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1) * s >= 2:
            assert (out_lab == k).any()
    m = reach + 1
    assert not fg[:m].any() and not fg[-m:].any() and not fg[:, :m].any() and not fg[:, -m:].any()
    assert set(out_lab.unique().tolist()) <= {0, 1, 2}
    # Away from every label edge the pixel is that label's level: a pixel reads source pixels
    # within one source pixel (bilinear) plus the pre-filter's radius of a shrink, that is
    # s * (1 + radius) output pixels.
    blur = math.ceil(3 * (1 / s - 1) / 2) if s < 2 / 3 else 0
    inner = out_lab >= 0
    for _ in range(math.ceil(s * (1 + blur)) + 1):
        pad = torch.nn.functional.pad(out_lab[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0]
        same = inner.clone()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                same &= pad[dy : dy + out_lab.shape[0], dx : dx + out_lab.shape[1]] == out_lab
        ip = torch.nn.functional.pad(same[None, None].float(), (1, 1, 1, 1))[0, 0] > 0
        inner = same & ip[:-2, 1:-1] & ip[2:, 1:-1] & ip[1:-1, :-2] & ip[1:-1, 2:]
    torch.testing.assert_close(out[0][inner & fg], levels[out_lab[inner & fg]], atol=1e-5, rtol=0)
    # Scaled area within the nearest sampling's rounding.
    for k in (1, 2):
        a0, a1 = float((lab == k).sum()) * s * s, float((out_lab == k).sum())
        if a0 >= 16:
            assert abs(a1 - a0) <= 2.5 * math.sqrt(a0) * max(s, 1) + 4


def test_same_draws_as_the_separate_steps_and_the_contrast_about_the_window() -> None:
    img, lab = _object(3, 40, 40)
    pol, scale = ObjectAugment(), RandomScale((0.5, 2.0))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = scale(img, lab, g1)
    pol(a, b, g1)
    out, out_lab = warp_within_reach(img, lab, pol, scale, 4, g2)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    # Contrast only: the window's mean is the pivot, so it is kept.
    plain, _ = warp_within_reach(img, lab, _Fixed(1.0, 1.0, 0.3, 1.2), None, 4, torch.Generator())
    stretched, _ = warp_within_reach(img * 0.5 + 0.25, lab, _Fixed(1.0, 1.0, 0.3, 1.2, 1.0, 1.1), None, 4, torch.Generator())
    assert abs(float(stretched.mean()) - float((plain * 0.5 + 0.25).mean())) < 1e-5
    assert float(stretched.std()) == pytest.approx(1.1 * 0.5 * float(plain.std()), rel=1e-4)


def test_config_chooses_the_warp_for_samples_and_paste_cells() -> None:
    data = simulate_cells(3, seed=1, size=(96, 96), cells=(4, 8))
    outs = {}
    for mode in ("separate", "fused"):
        comp = CellCompositor(CompositorConfig().replace(object_warp=mode, object_scale=(0.7, 1.4)), seed=2).fit(data, progress=False)
        s = comp.sample(torch.Generator().manual_seed(4))
        p = PasteCells(comp, p=1.0, n=2).apply(data[0], torch.Generator().manual_seed(4))
        for out in (s, p):
            # exact instance maps: ids 1..N, each id one class, every pasted id present
            ids = out.labels.unique()
            assert ids.tolist() == list(range(int(ids.max()) + 1))
            assert len(out.class_ids) == int(ids.max())
        outs[mode] = (s, p)
    # The same objects drawn in the same order (same random stream through the warp).
    assert [o["object"] for o in outs["separate"][0].meta["objects"]] == [o["object"] for o in outs["fused"][0].meta["objects"]]
    assert outs["separate"][1].meta["paste"]["objects"] == outs["fused"][1].meta["paste"]["objects"]
    # A custom policy is never fused: it runs as given.
    calls = []

    def policy(image, labels, generator):
        calls.append(image.shape)
        return image, labels

    comp = CellCompositor(CompositorConfig().replace(object_warp="fused"), policy=policy).fit(data, progress=False)
    comp.sample(torch.Generator().manual_seed(0))
    assert calls


def test_unknown_object_warp_is_one_line() -> None:
    from iaaa.errors import IaaaError

    with pytest.raises(IaaaError, match="object_warp"):
        CompositorConfig().replace(object_warp="both")


@pytest.mark.parametrize("s", [0.3, 0.45])
def test_a_shrink_is_low_passed_before_sampling(s: float) -> None:
    # A pixel checkerboard has no content a shrunk grid can hold: low-passed first it comes out
    # near its mean grey; sampled directly it aliases into a pattern of large swings.
    h = w = 64
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = ((yy + xx) % 2).to(torch.float32)[None]
    lab = torch.zeros(h, w, dtype=torch.int64)
    lab[8:56, 8:56] = 1
    out, out_lab = warp_within_reach(img, lab, _Fixed(1.0, 1.0, 0.2, 1.0), RandomScale((s, s)), 0, torch.Generator())
    inner = out[0][out_lab > 0]
    assert abs(float(inner.mean()) - 0.5) < 0.05
    assert float(inner.std()) < 0.05


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000), h=st.integers(6, 70), w=st.integers(6, 70), cells=st.integers(0, 3), scale=st.sampled_from([None, (0.5, 2.0), (1.5, 2.0), (0.3, 0.5)]),
    rim=st.integers(0, 6), extra=st.integers(0, 4), saves=st.sampled_from([0, 2000]), known_box=st.booleans(), stretch=st.sampled_from([None, 1.5, 3.0]),
)
def test_separate_within_reach_is_the_two_steps_cut_to_the_footprint(seed, h, w, cells, scale, rim, extra, saves, known_box, stretch) -> None:
    # The default object path (object_warp="separate") computes the labels, the brightness /
    # contrast and the box search only over the window placement reads; what placement then
    # sees (footprints: cut image, labels, alpha, corner descriptor) must be what the plain two
    # steps give, the same draws consumed. The cut's reach is at least footprints' (the feather
    # radius 3 of sigma 1 plus the rim), as the compositor passes it.
    reach = 3 + rim + extra
    img, lab = _object(seed, h, w, cells) if cells else (torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed)), torch.zeros(h, w, dtype=torch.int64))
    pol, pre = ObjectAugment(stretch=stretch), (RandomScale(scale) if scale else None)
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    a, b = pre(img, lab, g1) if pre else (img, lab)
    a, b = pol(a, b, g1)
    box = None
    if known_box and cells:
        ys, xs = torch.nonzero(lab, as_tuple=True)
        box = (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max()))
    old = object_warp._WINDOW_SAVES
    object_warp._WINDOW_SAVES = saves
    try:
        c, d = separate_within_reach(img, lab, pol, pre, reach, g2, box)
    finally:
        object_warp._WINDOW_SAVES = old
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    want = footprints([a], [b], 1.0, 3.0, "mask", rim, 2)
    got = footprints([c], [d], 1.0, 3.0, "mask", rim, 2)
    assert got.tights == want.tights
    assert np.array_equal(got.labs[0], want.labs[0])
    torch.testing.assert_close(got.images[0], want.images[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(got.alphas[0], want.alphas[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(got.desc, want.desc, atol=1e-6, rtol=0)
    if want.tights[0] is not None:
        assert d.shape[0] <= b.shape[0] and d.shape[1] <= b.shape[1]


def _two_steps(image, labels, policy, pre_scale, reach, generator, box=None):
    """What the default object path computed before it was cut to the footprint."""
    if pre_scale is not None:
        image, labels = pre_scale(image, labels, generator)
    return policy(image, labels, generator)


@pytest.mark.parametrize(
    "options",
    [{}, {"object_scale": (0.5, 2.0)}, {"object_scale": (0.4, 0.7), "rim": False}, {"sigma": 0.0}, {"feather": "outside", "object_scale": (1.5, 2.0)},
     {"onto": "background", "object_scale": (0.6, 1.8)}, {"object_stretch": 1.5}, {"object_stretch": 2.5, "object_scale": (0.5, 2.0)}],
    ids=["defaults", "scale", "shrink-no-rim", "no-feather", "outside-grow", "onto-background", "stretch", "stretch-scale"],
)
def test_samples_and_pastes_equal_the_two_step_object_path(options, monkeypatch) -> None:
    # End to end: the compositor's samples and PasteCells' outputs with the windowed default
    # path equal those of the plain two steps (placement cuts the same footprints), bit for bit
    # on one machine (the same kernels run on the same pixels).
    from iaaa.synthesis import compositor as compositor_module

    data = simulate_cells(4, seed=3, size=(128, 128), cells=(6, 12))
    comp = CellCompositor(CompositorConfig().replace(**options), seed=1).fit(data, progress=False)
    paste = PasteCells(comp, p=1.0, n=3)
    outs = {}
    for name in ("window", "two-steps"):
        if name == "two-steps":
            monkeypatch.setattr(compositor_module, "separate_within_reach", _two_steps)
        outs[name] = [comp.sample(torch.Generator().manual_seed(s)) for s in range(4)]
        outs[name] += [paste.apply(data[s % 4], torch.Generator().manual_seed(s)) for s in range(4)]
    for a, b in zip(outs["window"], outs["two-steps"]):
        assert torch.equal(a.labels, b.labels)
        torch.testing.assert_close(a.image, b.image, atol=1e-6, rtol=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(-math.pi, math.pi), st.floats(0.3, 2.5), st.integers(0, 8), st.integers(12, 60), st.integers(12, 60))
def test_pixel_map_on_the_read_part_equals_mapping_the_whole_crop(seed: int, angle: float, s: float, reach: int, h: int, w: int) -> None:
    # The compositor hands the fused warp its uint8 crop and the elementwise map to float at the
    # destination's levels; the warp maps only the part its window reads. Same bits as mapping
    # the whole crop first (shrinks included: their low-pass reads the mapped part).
    img, lab = _object(seed, h, w)
    raw = (img * 255).round().to(torch.uint8)
    from iaaa.dtypes import to_float
    from iaaa.synthesis.levels import match_intensity

    src = np.array([[0.2, 0.3], [0.6, 0.5], [0.01, 0.01]], dtype=np.float32)
    dst = np.array([[0.1, 0.35], [0.4, 0.9], [0.01, 0.02]], dtype=np.float32)
    levels = lambda x: match_intensity(to_float(x), src, dst)  # noqa: E731
    pol = _Fixed(1.0, -1.0, angle, s, 1.1, 0.9)
    a_img, a_lab = warp_within_reach(levels(raw), lab, pol, RandomScale((0.5, 2.0)), reach, torch.Generator().manual_seed(seed))
    b_img, b_lab = warp_within_reach(raw, lab, pol, RandomScale((0.5, 2.0)), reach, torch.Generator().manual_seed(seed), pixel_map=levels)
    assert torch.equal(a_lab, b_lab)
    assert torch.equal(a_img, b_img)
