"""Placement: exact labels at the reported boxes, no overlap, gap and border kept, background
untouched beyond the feather, corner matching, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.filters import feather_radius
from iaaa.synthesis.canvas import Canvas as _Canvas
from iaaa.synthesis.placement import PlacementConfig, place_objects
from iaaa.structures import CellObject, from_float



pytestmark = pytest.mark.usefixtures("one_thread")

def _blob_object(g: torch.Generator, c: int, n_cells: int, ring: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An object crop: ``n_cells`` touching elliptic cells, ``ring`` pixels of context."""
    h, w = int(torch.randint(6, 20, (1,), generator=g)), int(torch.randint(6, 20, (1,), generator=g))
    yy, xx = torch.meshgrid(torch.arange(h + 2 * ring), torch.arange(w + 2 * ring), indexing="ij")
    lab = torch.zeros(h + 2 * ring, w + 2 * ring, dtype=torch.int64)
    for k in range(1, n_cells + 1):
        cy = ring + (k - 0.5) * h / n_cells
        cx = ring + w / 2
        ry, rx = max(h / (2 * n_cells), 1.0), w / 2
        inside = ((yy - cy + 0.5) / ry) ** 2 + ((xx - cx + 0.5) / rx) ** 2 <= 1
        lab[inside & (lab == 0)] = k
    img = torch.rand(c, *lab.shape, generator=g) * 0.2 + 0.6 * (lab > 0)
    cls = torch.arange(n_cells) + 2
    return img, lab, cls


@st.composite
def placements(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    c = draw(st.sampled_from([1, 2, 3]))
    H, W = draw(st.integers(24, 90)), draw(st.integers(24, 90))
    dtype = draw(st.sampled_from([torch.uint8, torch.uint16, torch.float32]))
    bg = from_float(torch.rand(c, H, W, generator=g), dtype)
    objs = [_blob_object(g, c, draw(st.integers(1, 3)), draw(st.integers(0, 5))) for _ in range(draw(st.integers(0, 12)))]
    kw = dict(
        gap=draw(st.one_of(st.none(), st.integers(0, 4))),
        border=draw(st.integers(0, 3)),
        sigma=draw(st.sampled_from([0.0, 0.7, 1.0, 2.0])),
        feather=draw(st.sampled_from(["mask", "outside"])),
        n_candidates=draw(st.integers(1, 24)),
        rounds=draw(st.integers(1, 3)),
        match_sigma=draw(st.sampled_from([0.0, 2.0])),
        collision=draw(st.sampled_from(["mask", "box"])),
    )
    if draw(st.booleans()):
        # Candidate centres drawn from a density: one random rectangle of weight, the rest 0.
        h, w = bg.shape[-2:]
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        dens = torch.zeros(h, w, dtype=torch.float64)
        dens[y0 : y0 + draw(st.integers(1, h)), x0 : x0 + draw(st.integers(1, w))] = 1.0
        kw["density"] = dens
    return bg, objs, kw, seed


@settings(max_examples=50, deadline=None)
@given(placements())
def test_placement_properties(case):
    bg, objs, kw, seed = case
    config = PlacementConfig(**{k: v for k, v in kw.items() if k != "density"})
    r = place_objects(bg, objs, config, density=kw.get("density"), generator=torch.Generator().manual_seed(seed))
    H, W = bg.shape[-2:]
    lab = r.labels
    assert r.image.dtype == bg.dtype and r.image.shape == bg.shape and lab.shape == (H, W)
    # Every object is placed or skipped, exactly once.
    assert sorted(r.placed.tolist() + r.skipped.tolist()) == list(range(len(objs)))
    # Ids unique, 1..N, all present, one class id each, carried from the object.
    n = r.new_ids.numel()
    assert r.new_ids.tolist() == list(range(1, n + 1))
    assert sorted(set(lab.unique().tolist()) - {0}) == list(range(1, n + 1))
    gap = feather_radius(kw["sigma"]) if kw["gap"] is None else kw["gap"]
    union = torch.zeros(H, W, dtype=torch.bool)
    for p, (x0, y0, x1, y1) in zip(r.placed.tolist(), r.boxes.tolist()):
        img_o, lab_o, cls_o = objs[p]
        ys, xs = torch.nonzero(lab_o > 0, as_tuple=True)
        t = lab_o[int(ys.min()) : int(ys.max()) + 1, int(xs.min()) : int(xs.max()) + 1]
        assert (y1 - y0 + 1, x1 - x0 + 1) == tuple(t.shape)
        b = kw["border"]
        assert b <= x0 and x1 <= W - 1 - b and b <= y0 and y1 <= H - 1 - b
        ids = r.new_ids[r.instance_object == p]
        # The label map at the reported box is the object's mask with fresh ids, cell by cell.
        present = sorted(set(t.unique().tolist()) - {0})
        lut = torch.zeros(int(t.max()) + 1, dtype=torch.int64)
        lut[present] = ids
        region = lab[y0 : y1 + 1, x0 : x1 + 1]
        assert torch.equal(torch.where(torch.isin(region, ids), region, 0), lut[t])
        assert r.class_ids[r.instance_object == p].tolist() == [int(cls_o[v - 1]) for v in present]
        # No pixel of these ids outside the box; with box collisions the box grown by gap holds
        # no cell placed before (mask collisions only promise the distance checked below).
        assert int(torch.isin(lab, ids).sum()) == int((t > 0).sum())
        if kw["collision"] == "box":
            grown = lab[max(0, y0 - gap) : y1 + gap + 1, max(0, x0 - gap) : x1 + gap + 1]
            assert bool(((grown == 0) | (grown >= int(ids.min()))).all())
        # Hence cells of different objects are more than gap pixels apart (Chebyshev).
        mine = torch.isin(lab, ids).float()[None, None]
        reach = F.max_pool2d(mine, 2 * gap + 1, 1, gap)[0, 0] > 0 if gap else mine[0, 0] > 0
        assert bool((torch.isin(lab[reach], ids) | (lab[reach] == 0)).all())
        union |= torch.isin(lab, ids)
    # Farther than the feather radius from every pasted cell, the background is untouched.
    rad = feather_radius(kw["sigma"])
    near = F.max_pool2d(union.float()[None, None], 2 * rad + 1, 1, rad)[0, 0] > 0 if rad else union
    assert torch.equal(r.image[:, ~near], bg[:, ~near])
    if (kw["sigma"] == 0 or kw["feather"] == "outside") and gap >= rad:
        # Opaque cells that no later feather reaches: their pixels are the object's pixels.
        for p, (x0, y0, x1, y1) in zip(r.placed.tolist(), r.boxes.tolist()):
            img_o, lab_o, _ = objs[p]
            ys, xs = torch.nonzero(lab_o > 0, as_tuple=True)
            sl = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
            m = lab_o[sl] > 0
            got = r.image[:, y0 : y1 + 1, x0 : x1 + 1][:, m]
            assert torch.equal(got, from_float(img_o[:, sl[0], sl[1]][:, m], bg.dtype))
    # The same generator seed gives the same result.
    r2 = place_objects(bg, objs, config, density=kw.get("density"), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(r.image, r2.image) and torch.equal(r.labels, r2.labels)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(1, 150), st.integers(0, 5), st.booleans(), st.integers(0, 2**31 - 1))
def test_occupancy_table_counts_exactly_after_marks(h, w, gap, start_with_labels, seed):
    rng = np.random.default_rng(seed)
    lab0 = (rng.random((h, w)) < 0.03).astype(np.int64) if start_with_labels else None
    cv = _Canvas(torch.zeros(1, h, w), np.zeros((1, h, w), np.float32), None if lab0 is None else lab0.copy(), gap, 0)
    occ = np.zeros((h, w), bool) if lab0 is None else lab0 > 0
    for _ in range(6):
        th, tw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        y, x = int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))
        m = (rng.random((th, tw)) < 0.5) & ~occ[y : y + th, x : x + tw]  # placed cells never overlap
        cv.mark(m, y, x)
        occ[y : y + th, x : x + tw] |= m
        qh, qw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        xs, ys = rng.integers(0, w - qw + 1, 16), rng.integers(0, h - qh + 1, 16)
        want = [occ[max(0, b - gap) : b + qh + gap, max(0, a - gap) : a + qw + gap].sum() for a, b in zip(xs, ys)]
        assert cv.occupied(xs, ys, qh, qw).tolist() == want


def test_corner_matching_picks_the_matching_half():
    # Dark left half, bright right half; an object whose surroundings are bright.
    bg = torch.full((1, 64, 128), 0.1)
    bg[:, :, 64:] = 0.8
    lab = torch.zeros(16, 16, dtype=torch.int64)
    lab[5:11, 5:11] = 1
    img = torch.full((1, 16, 16), 0.8)
    img[0][lab > 0] = 0.3
    wins = 0
    for s in range(20):
        r = place_objects(bg, [(img, lab)], PlacementConfig(n_candidates=16, sigma=1.0), generator=torch.Generator().manual_seed(s))
        wins += int(r.boxes[0, 0]) >= 64 - 3
    assert wins >= 19
    # With one candidate there is nothing to choose: both halves occur.
    sides = {int(place_objects(bg, [(img, lab)], PlacementConfig(n_candidates=1), generator=torch.Generator().manual_seed(s)).boxes[0, 0]) >= 64 for s in range(20)}
    assert sides == {True, False}


def test_existing_labels_are_kept_and_avoided():
    bg = torch.zeros(1, 40, 40)
    existing = torch.zeros(40, 40, dtype=torch.int64)
    existing[:, :30] = 7  # only a 10-pixel strip is free
    lab = torch.zeros(4, 4, dtype=torch.int64)
    lab[1:3, 1:3] = 1
    r = place_objects(bg, [(torch.ones(1, 4, 4), lab)] * 3, PlacementConfig(gap=1, sigma=0.0), labels=existing, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r.labels[existing == 7], existing[existing == 7])
    assert r.new_ids.tolist()[:1] == [8]
    assert bool((r.boxes[:, 0] >= 31).all())


def test_full_canvas_skips_and_reports():
    lab = torch.ones(10, 10, dtype=torch.int64)
    objs = [(torch.ones(1, 10, 10), lab)] * 5 + [(torch.ones(1, 30, 30), torch.ones(30, 30, dtype=torch.int64))]
    r = place_objects(torch.zeros(1, 20, 20), objs, PlacementConfig(gap=0, sigma=0.0), generator=torch.Generator().manual_seed(0))
    assert r.placed.numel() <= 4 and 5 in r.skipped.tolist()
    assert r.placed.numel() + r.skipped.numel() == 6
    # An object with an empty mask is skipped too.
    r = place_objects(torch.zeros(1, 20, 20), [(torch.ones(1, 5, 5), torch.zeros(5, 5, dtype=torch.int64))])
    assert r.skipped.tolist() == [0] and r.labels.max() == 0


def test_accepts_cell_objects_and_keeps_dtype():
    lab = torch.zeros(12, 12, dtype=torch.int64)
    lab[3:9, 3:9] = 1
    o = CellObject(torch.full((3, 12, 12), 1000, dtype=torch.uint16), lab, torch.tensor([4]), "sco")
    bg = torch.full((3, 50, 50), 10, dtype=torch.uint16)
    r = place_objects(bg, [o], PlacementConfig(feather="outside"), generator=torch.Generator().manual_seed(3))
    assert r.image.dtype == torch.uint16 and r.class_ids.tolist() == [4]
    assert int(r.image.to(torch.int32).max()) == 1000


def test_errors_name_the_fault():
    bg = torch.zeros(3, 20, 20)
    lab = torch.ones(4, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"objects\[1\]: 1 channels, background has 3"):
        place_objects(bg, [(torch.zeros(3, 4, 4), lab), (torch.zeros(1, 4, 4), lab)])
    with pytest.raises(ValueError, match=r"objects\[0\]: image"):
        place_objects(bg, [(torch.zeros(3, 5, 4), lab)])
    with pytest.raises(TypeError, match=r"objects\[0\]"):
        place_objects(bg, [torch.zeros(3, 4, 4)])
    with pytest.raises(ValueError, match="feather"):
        place_objects(bg, [], PlacementConfig(feather="soft"))
    with pytest.raises(ValueError, match="labels: shape"):
        place_objects(bg, [], labels=torch.zeros(5, 5, dtype=torch.int64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    objs = [_blob_object(g, 1, 2, 4) for _ in range(6)]
    bg = torch.rand(1, 64, 64, generator=g)
    a = place_objects(bg, objs, generator=torch.Generator().manual_seed(1))
    b = place_objects(bg.cuda(), [(i.cuda(), l.cuda(), c) for i, l, c in objs], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.labels, b.labels.cpu())
    assert torch.allclose(a.image, b.image.cpu(), atol=1e-5)


def test_policy_that_invents_ids_is_reported():
    lab = torch.zeros(8, 8, dtype=torch.int64)
    lab[2:6, 2:6] = 3  # an object of one cell must use id 1
    with pytest.raises(ValueError, match=r"objects\[0\]: label value 3 but only 1 class ids"):
        place_objects(torch.zeros(1, 30, 30), [(torch.ones(1, 8, 8), lab, torch.tensor([1]))])
