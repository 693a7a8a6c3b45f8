"""Mask-level synthesis kernels: halo measurement, mask growth, mask-contact grouping, inpainting,
remnant scores (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.dtypes import from_float, to_float
from iaaa.errors import IaaaError
from iaaa.metrics.remnants import remnant_scores
from iaaa.synthesis.objects import group_cells, label_adjacency
from iaaa.synthesis.halo import dilate_disk, grow_masks, grow_to_any, halo_profile, measure_halo, nearest_cells
from iaaa.synthesis.inpaint import inpaint, remove_cells_by_mask
from iaaa.synthesis.texture import background_level

pytestmark = pytest.mark.usefixtures("one_thread")
DTYPES = [torch.uint8, torch.uint16, torch.float32]


@st.composite
def label_maps(draw, max_side=28, max_cells=7):
    h, w = draw(st.integers(6, max_side)), draw(st.integers(6, max_side))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    lab = torch.zeros(h, w, dtype=torch.int64)
    for k in range(1, draw(st.integers(0, max_cells)) + 1):
        rh, rw = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g))
        y, x = int(torch.randint(0, h - rh + 1, (1,), generator=g)), int(torch.randint(0, w - rw + 1, (1,), generator=g))
        lab[y : y + rh, x : x + rw] = k  # later cells may cover earlier ones: missing ids are fine
    return lab


# ----------------------------------------------------------------------------- grow_masks


@settings(max_examples=40, deadline=None)
@given(label_maps(), st.sampled_from([0, 1, 2.5, 4]), st.sampled_from(["euclidean", "chessboard"]))
def test_grow_masks_nearest_without_overlap(lab, radius, metric):
    grown = grow_masks(lab, radius, metric)
    assert grown.dtype == torch.int64 and grown.shape == lab.shape
    cells = lab > 0
    assert torch.equal(grown[cells], lab[cells])  # existing labels never change
    assert set(torch.unique(grown).tolist()) <= set(torch.unique(lab).tolist())
    a, gr = lab.numpy(), grown.numpy()
    if not cells.any():
        assert torch.equal(grown, lab)
        return
    if metric == "euclidean":
        d = ndi.distance_transform_edt(a == 0)
    else:
        d = ndi.distance_transform_cdt(a == 0, metric="chessboard").astype(float)
    assert ((gr > 0) == ((a > 0) | (d <= radius))).all()  # grown exactly the pixels within radius
    # Every grown pixel took a label at the nearest distance (ties may go either way).
    yy, xx = np.nonzero((a == 0) & (gr > 0))
    for y, x in zip(yy, xx):
        py, px = np.nonzero(a == gr[y, x])
        dy, dx = np.abs(py - y), np.abs(px - x)
        own = np.sqrt(dy**2 + dx**2).min() if metric == "euclidean" else np.maximum(dy, dx).min()
        assert own <= d[y, x] + 1e-9


@settings(max_examples=40, deadline=None)
@given(label_maps(), st.integers(0, 12), st.integers(0, 3))
def test_nearest_cells_grows_exactly_as_grow_masks(lab, radius, big):
    """The table kept from the halo measurement grows masks to the same pixels and labels as a
    fresh distance transform, for every integer radius (also labels beyond uint16)."""
    lab = lab * (70_000 if big == 3 else 1)
    if not (lab > 0).any() or not (lab == 0).any():
        with pytest.raises(IaaaError, match="one cell and one free pixel"):
            nearest_cells(lab)
        return
    d, table = nearest_cells(lab)
    assert np.array_equal(d, ndi.distance_transform_edt(lab.numpy() == 0))
    assert table.ring.dtype == np.uint8 and table.label.dtype == (np.int64 if big == 3 else np.uint16)
    assert torch.equal(table.grow(radius), grow_masks(lab, radius))
    img = torch.rand(lab.shape, generator=torch.Generator().manual_seed(radius))
    a, b = halo_profile(img, lab, max_distance=8, far=4.0), halo_profile(img, lab, max_distance=8, far=4.0, distance=d)
    assert np.array_equal(a.mean, b.mean, equal_nan=True) and (a.far, a.noise, a.far_distance) == (b.far, b.noise, b.far_distance)
    with pytest.raises(IaaaError, match="radius"):
        table.grow(2.5)
    with pytest.raises(IaaaError, match="distance"):
        halo_profile(img, lab, distance=d[:-1])


@settings(max_examples=30, deadline=None)
@given(label_maps(max_side=20), st.integers(0, 4))
def test_dilate_disk_is_the_euclidean_neighbourhood(lab, radius):
    m = lab > 0
    got = dilate_disk(m, radius)
    want = ndi.distance_transform_edt(~m.numpy()) <= radius if m.any() else np.zeros(m.shape, bool)
    assert np.array_equal(got.numpy(), want)


@settings(max_examples=60, deadline=None)
@given(label_maps(max_side=24), st.integers(1, 9))
def test_dilate_disk_equals_shifted_disk_offsets(lab, radius):
    """An independent reference for both code paths: OR of the mask shifted by every offset of the
    disk dy^2 + dx^2 <= r^2 (what the GPU path's convolution computes)."""
    m = (lab > 0).numpy()
    h, w = m.shape
    want = np.zeros_like(m)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius and abs(dy) < h and abs(dx) < w:
                want[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] |= m[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    assert np.array_equal(dilate_disk(lab > 0, radius).numpy(), want)
    # the same on a strided view (object crops are views)
    big = torch.zeros(h + 4, w + 4, dtype=torch.bool)
    big[2 : 2 + h, 2 : 2 + w] = lab > 0
    assert np.array_equal(dilate_disk(big[2 : 2 + h, 2 : 2 + w], radius).numpy(), want)


@pytest.mark.parametrize("shape, radius", [((3, 16390), 9), ((40, 16370), 20), ((1, 1), 4), ((30, 1), 6), ((700, 900), 31), ((300, 500), 12), ((1024, 1024), 20), ((60, 60), 6)])
def test_dilate_disk_exact_on_wide_thin_and_large_masks(shape, radius):
    """Row distances need a "no cell in this row" value farther than the radius from every column:
    widths near 2**14 switch to wide integers; rows without a set pixel, one-pixel masks and a
    radius beyond the mask's height included. Shifted ORs (small radii, large masks: the last
    three cases sit at the measured crossovers) give the same pixels."""
    rng = np.random.default_rng(radius)
    m = rng.random(shape) < 0.0005
    m[0, 0] = True
    if shape[0] > 2:
        m[1:3] = False
    want = ndi.distance_transform_edt(~m) <= radius
    assert np.array_equal(dilate_disk(torch.from_numpy(m), radius).numpy(), want)


def test_grow_masks_rejects_bad_input():
    with pytest.raises(IaaaError):
        grow_masks(torch.zeros(4, 4), 1)
    with pytest.raises(IaaaError):
        grow_masks(torch.zeros(4, 4, dtype=torch.int64), -1)
    with pytest.raises(IaaaError):
        grow_masks(torch.zeros(4, 4, dtype=torch.int64), 1, metric="city")


# ----------------------------------------------------------------------------- grouping


def _brute_groups(a: np.ndarray, touch: int) -> set[frozenset[int]]:
    ids = [int(i) for i in np.unique(a) if i > 0]
    pts = {i: np.argwhere(a == i) for i in ids}
    parent = {i: i for i in ids}

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for n, i in enumerate(ids):
        for j in ids[n + 1 :]:
            gap = np.abs(pts[i][:, None, :] - pts[j][None, :, :]).max(-1).min()
            if gap <= 2 * touch + 1:  # square-grown masks overlap or share an edge or corner
                parent[find(i)] = find(j)
    out: dict[int, set[int]] = {}
    for i in ids:
        out.setdefault(find(i), set()).add(i)
    return {frozenset(s) for s in out.values()}


@settings(max_examples=60, deadline=None)
@given(label_maps(max_side=24, max_cells=8), st.integers(0, 3))
def test_group_cells_matches_brute_force(lab, touch):
    ids, group = group_cells(lab, touch)
    a = lab.numpy()
    assert ids.tolist() == [int(i) for i in np.unique(a) if i > 0]  # every cell, once
    assert group.shape == ids.shape
    if ids.numel():
        assert sorted(set(group.tolist())) == list(range(int(group.max()) + 1))
        firsts = [ids[group == k].min().item() for k in range(int(group.max()) + 1)]
        assert firsts == sorted(firsts)  # groups numbered by lowest member
    got = {frozenset(ids[group == k].tolist()) for k in torch.unique(group).tolist()}
    assert got == _brute_groups(a, touch)


@settings(max_examples=60, deadline=None)
@given(label_maps(max_side=24, max_cells=8), st.integers(0, 4))
def test_grow_to_any_takes_a_cell_within_reach(lab, radius):
    a = lab.numpy()
    grown = grow_to_any(a, radius)
    assert np.array_equal(grown, np.where(a > 0, a, ndi.maximum_filter(a, size=2 * radius + 1, mode="constant", cval=0)))
    # Each grown pixel holds a cell within Chebyshev distance `radius`; pixels beyond stay free.
    near = ndi.distance_transform_cdt(a == 0, metric="chessboard") <= radius if (a > 0).any() else np.zeros_like(a, dtype=bool)
    assert np.array_equal(grown > 0, near | (a > 0))
    for y, x in zip(*np.nonzero((grown > 0) & (a == 0))):
        win = a[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
        assert grown[y, x] in win


def test_group_cells_subset_ignores_other_labels():
    lab = torch.zeros(10, 20, dtype=torch.int64)
    lab[2:5, 2:5] = 1
    lab[2:5, 6:8] = 2  # debris bridging 1 and 3
    lab[2:5, 9:12] = 3
    _, g_all = group_cells(lab, 1)
    assert g_all.tolist() == [0, 0, 0]
    ids, g = group_cells(lab, 1, ids=torch.tensor([1, 3]))
    assert ids.tolist() == [1, 3] and g.tolist() == [0, 1]
    with pytest.raises(IaaaError):
        group_cells(lab, 0, ids=torch.tensor([4]))


def test_label_adjacency_diagonal():
    lab = torch.tensor([[1, 0], [0, 2]])
    assert label_adjacency(lab).tolist() == [[1, 2]]


# ----------------------------------------------------------------------------- halo


def _halo_scene(halo=5, seed=0, size=160, dtype=torch.uint16):
    """Discs on a noisy, tilted background with a bright ring of ``halo`` pixels around each."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    lab = torch.zeros(size, size, dtype=torch.int64)
    centres = [(30, 30), (30, 110), (80, 70), (125, 30), (120, 120)]
    for k, (cy, cx) in enumerate(centres, 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2] = k
    d = torch.from_numpy(ndi.distance_transform_edt(lab.numpy() == 0)).float()
    bg = 0.35 + 0.1 * xx.float() / size + 0.02 * torch.randn(size, size, generator=g)
    img = bg + 0.25 * (lab > 0) + 0.3 * torch.clamp(1 - (d - 1) / halo, 0, 1) * (lab == 0)
    return from_float(img.clamp(0, 1)[None], dtype), lab


@pytest.mark.parametrize("halo", [3, 6])
def test_measure_halo_finds_the_ring(halo):
    samples = [_halo_scene(halo, seed) for seed in range(3)]
    width, widths = measure_halo(samples)
    assert len(widths) == 3
    assert abs(width - halo) <= 1, (width, widths)
    p = halo_profile(*samples[0])
    assert p.deviation[0] > 5 * p.noise and np.isfinite(p.far)


def test_measure_halo_errors():
    with pytest.raises(IaaaError):
        measure_halo([(torch.zeros(1, 8, 8), torch.zeros(8, 8, dtype=torch.int64))])
    with pytest.raises(IaaaError):
        halo_profile(torch.zeros(1, 8, 8), torch.ones(8, 8, dtype=torch.int64))


# ----------------------------------------------------------------------------- inpainting


@st.composite
def scenes(draw):
    lab = draw(label_maps(max_side=48, max_cells=9))
    c = draw(st.sampled_from([1, 3]))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    img = from_float(torch.rand(c, *lab.shape, generator=g) * 0.3 + 0.6 * (lab > 0), dtype)
    return img, lab, draw(st.sampled_from([0, 1, 3])), draw(st.sampled_from([0, 2, 8])), seed


@settings(max_examples=40, deadline=None)
@given(scenes())
def test_remove_cells_by_mask_properties(scene):
    img, lab, halo, block, seed = scene
    hole = grow_masks(lab, halo) > 0
    if bool(hole.all()):
        with pytest.raises(IaaaError):
            remove_cells_by_mask(img, lab, halo)
        return
    r = remove_cells_by_mask(img, lab, halo, block=block, generator=torch.Generator().manual_seed(seed))
    assert r.image.dtype == img.dtype and r.image.shape == img.shape
    assert torch.equal(r.hole, hole)
    # Beyond every removed halo, bit-identical.
    assert torch.equal(r.image[:, ~hole], img[:, ~hole])
    x = to_float(r.image)
    assert bool(torch.isfinite(x).all())
    known = to_float(img)[:, ~hole]
    lo, hi = known.min(1).values, known.max(1).values
    assert bool((x[:, hole] >= lo[:, None]).all()) and bool((x[:, hole] <= hi[:, None]).all())
    r2 = remove_cells_by_mask(img, lab, halo, block=block, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(r.image, r2.image)


def test_inpaint_dense_field_and_no_background():
    # 97 % of the image is hole: the fill still comes from the few background pixels.
    g = torch.Generator().manual_seed(3)
    img = from_float(0.4 + 0.05 * torch.rand(1, 64, 64, generator=g), torch.uint16)
    hole = torch.ones(64, 64, dtype=torch.bool)
    hole[::16, ::16] = False
    hole[30:32, 30:32] = False
    r = inpaint(img, hole, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r.image[:, ~hole], img[:, ~hole])
    vals, out = img[0][~hole].to(torch.int32), r.image.to(torch.int32)
    assert int(out.min()) >= int(vals.min()) and int(out.max()) <= int(vals.max())
    assert r.block == 0  # no 2x2 background window exists: single residual pixels
    with pytest.raises(IaaaError, match="no background pixel"):
        inpaint(img, torch.ones(64, 64, dtype=torch.bool))


def test_background_level_follows_a_gradient_through_a_large_hole():
    ramp = torch.linspace(0.2, 0.8, 128).view(1, 1, 128).expand(1, 96, 128).contiguous()
    known = torch.ones(96, 128, dtype=torch.bool)
    known[20:76, 30:100] = False
    level = background_level(ramp, known, 4.0)
    err = (level - ramp)[0, 30:66, 45:85].abs().max()
    assert float(err) < 0.03, float(err)


def test_removal_leaves_no_ghost():
    """Halo-grown removal of cells on a textured, tilted background: the filled regions match the
    background around them (remnant contrast well below the cells', texture typical)."""
    img, lab = _halo_scene(5, seed=4, size=192)
    halo, _ = measure_halo([(img, lab)])
    hole = grow_masks(lab, halo) > 0
    r = remove_cells_by_mask(img, lab, halo, generator=torch.Generator().manual_seed(0))
    before = remnant_scores(img, img, hole)
    after = remnant_scores(r.image, img, hole)
    assert before["contrast_mean"] > 5
    assert after["contrast_mean"] < 0.5, after
    assert after["texture"] < 0.1, after
    # Removing by the bare mask leaves the halo behind: a ring the scores see.
    bare = remove_cells_by_mask(img, lab, 0, generator=torch.Generator().manual_seed(0)).image
    assert remnant_scores(bare, img, hole)["contrast_mean"] > 2 * after["contrast_mean"] + 0.5
