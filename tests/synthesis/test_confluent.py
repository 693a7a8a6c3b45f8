"""Confluent data (a monolayer or tissue where every cell touches its neighbours): sheets are
cut into pasteable parts, and a real image with no free room gets objects pasted on top of its
cells instead of coming back verbatim."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage, from_float, to_float
from iaaa.synthesis import CellCompositor, CompositorConfig
from iaaa.synthesis.halo import grow_masks
from iaaa.synthesis.objects import group_cells, label_adjacency

pytestmark = pytest.mark.usefixtures("one_thread")


def confluent_labels(h: int, w: int, n: int, seed: int, gap: bool = True) -> np.ndarray:
    """A Voronoi tiling of ``n`` cells, optionally with 1-2 px of background between them."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, [h, w], (n, 2))
    yy, xx = np.mgrid[:h, :w]
    lab = (((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).argmin(-1) + 1).astype(np.int64)
    if gap:
        lab[ndi.grey_dilation(lab, size=3) != ndi.grey_erosion(lab, size=3)] = 0
    return lab


def confluent_image(h: int, w: int, n: int, seed: int, gap: bool = True) -> AnnotatedImage:
    """Two classes (odd / even ids), so class ids can be followed through occlusion."""
    rng = np.random.default_rng(seed + 1000)
    lab = confluent_labels(h, w, n, seed, gap)
    img = np.where(lab > 0, 140.0, 90.0) + rng.normal(0, 6, (h, w))
    ids = np.unique(lab[lab > 0])
    return AnnotatedImage(torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))[None], torch.from_numpy(lab),
                          torch.from_numpy(ids % 2 + 1), name=f"conf{seed}", categories={1: "even", 2: "odd"})


def _contact_edges(lab: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(e) for e in label_adjacency(grow_masks(lab, 1, metric="chessboard")).tolist()}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(12, 60), k=st.integers(1, 9))
def test_a_sheet_is_cut_into_connected_parts_of_at_most_k_cells(seed, n, k):
    lab = torch.from_numpy(confluent_labels(96, 96, n, seed))
    ids, whole = group_cells(lab, 1)
    ids2, group = group_cells(lab, 1, sheet_cells=k)
    assert torch.equal(ids, ids2)
    big = torch.bincount(whole)
    if int(big.max()) <= k or 2 * int(big.max()) < ids.numel():
        assert torch.equal(group, whole)  # nothing qualifies as a sheet
        return
    sizes = torch.bincount(group)
    assert int(sizes.max()) <= k and int(sizes.min()) >= 1
    # every part lies inside one original group, and is connected through cell contacts
    for g in range(int(group.max()) + 1):
        members = ids[group == g].tolist()
        assert len(set(whole[group == g].tolist())) == 1
        edges = [(a, b) for a, b in _contact_edges(lab) if a in members and b in members]
        reach, todo = {members[0]}, [members[0]]
        while todo:
            c = todo.pop()
            for a, b in edges:
                for x, y in ((a, b), (b, a)):
                    if x == c and y not in reach:
                        reach.add(y)
                        todo.append(y)
        assert reach == set(members)
    # groups stay numbered by their lowest cell
    firsts = [int(ids[group == g].min()) for g in range(int(group.max()) + 1)]
    assert firsts == sorted(firsts)


def test_clusters_that_are_not_most_of_the_image_are_not_cut():
    """Three separate clusters of 12 cells each (a third of the cells each): objects, not sheets."""
    lab = np.zeros((96, 300), np.int64)
    for c in range(3):
        part = confluent_labels(96, 96, 12, c)
        lab[:, c * 102 : c * 102 + 96] = np.where(part > 0, part + 12 * c, 0)
    ids, whole = group_cells(torch.from_numpy(lab), 1)
    _, cut = group_cells(torch.from_numpy(lab), 1, sheet_cells=8)
    assert int(whole.max()) == 2 and torch.equal(whole, cut)


@pytest.fixture(scope="module", params=[True, False], ids=["gaps", "tiled"])
def confluent(request):
    # "tiled": every pixel a cell (a segmented epithelium or tissue): no background to clean,
    # the real images themselves take the pastes.
    return [confluent_image(192, 192, 45, s, gap=request.param) for s in range(4)]


def test_a_fully_tiled_field_needs_the_real_image_as_canvas():
    tiled = [confluent_image(96, 96, 20, s, gap=False) for s in range(2)]
    assert all(int((t.labels == 0).sum()) == 0 for t in tiled)
    with pytest.raises(IaaaError, match=r"no image has background pixels .*\(conf0, conf1\)"):
        CellCompositor(CompositorConfig().replace(onto="background")).fit(tiled, progress=False)
    comp = CellCompositor().fit(tiled, progress=False)
    out = comp.sample(torch.Generator().manual_seed(0))
    assert out.meta["objects"] and int((out.labels == 0).sum()) == 0
    from iaaa import PasteCells

    pasted = PasteCells(comp, p=1.0).apply(tiled[0], torch.Generator().manual_seed(0))
    n = int(pasted.labels.max())
    assert pasted.meta["paste"]["pasted"] and n == pasted.class_ids.numel() and set(pasted.labels.unique().tolist()) == set(range(1, n + 1))


def test_a_confluent_field_gives_objects_and_new_images(confluent):
    comp = CellCompositor(CompositorConfig().replace(group_by=None), seed=0).fit(confluent, progress=False)
    assert len(comp.objects) >= 2 and int(comp.object_cells.max()) <= 8
    paper = CellCompositor(CompositorConfig().replace(group_by=None, sheet_cells=None), seed=0).fit(confluent, progress=False)
    assert int(paper.object_cells.max()) >= 40  # uncut: one sheet per image
    for i in range(8):
        out = comp.sample(torch.Generator().manual_seed(i))
        meta = out.meta
        assert meta["objects"], "a draw onto a full real image pasted nothing"
        real = comp.pools.backgrounds[meta["background"]].real
        m = meta["real_cells"]
        assert m + meta["hidden_real_cells"] == int(real.labels.max())
        lab = out.labels
        n = int(lab.max())
        assert set(lab.unique().tolist()) - {0} == set(range(1, n + 1))
        assert out.class_ids.numel() == n == len(meta["instance_kind"]) == meta["instance_object"].numel()
        assert meta["instance_kind"][:m] == ["real"] * m
        pasted = torch.zeros_like(lab, dtype=torch.bool)
        for o in meta["objects"]:
            for i_ in o["ids"]:
                pasted |= lab == i_
                assert i_ > m
        # every pixel that is not a pasted cell keeps its real label (renumbered), and no real
        # cell survives that the paste covered entirely
        src = torch.from_numpy(real.labels)
        keep = ~pasted
        old = src[keep]
        new = lab[keep]
        assert torch.equal(new > 0, old > 0)
        pairs = torch.unique(torch.stack([old[old > 0], new[new > 0]]), dim=1)
        assert pairs.shape[1] == m and torch.equal(pairs[1], torch.arange(1, m + 1))
        # a surviving real cell keeps its class; a pasted one carries its source cell's
        assert torch.equal(out.class_ids[:m].cpu(), torch.from_numpy(real.class_ids)[pairs[0] - 1])
        assert set(out.class_ids[m:].tolist()) <= {1, 2}
        # the windows hold their instances
        win = meta["windows"]
        for i_, (x0, y0, x1, y1) in zip(win.ids.tolist(), win.boxes.tolist()):
            ys, xs = torch.nonzero(lab == i_, as_tuple=True)
            assert int(xs.min()) >= x0 and int(xs.max()) <= x1 and int(ys.min()) >= y0 and int(ys.max()) <= y1
        # farther than the feather radius from every pasted cell, the image is the real one
        r = comp.radius
        near = F.max_pool2d(pasted.float()[None, None], 2 * r + 1, 1, r)[0, 0] > 0
        bg = from_float(to_float(comp.backgrounds[meta["background"]]), out.image.dtype)
        assert torch.equal(out.image[:, ~near], bg[:, ~near])
        assert bool(near.any())
        # the feather stays off the real cells around the paste: they keep their own pixels
        real_px = (lab > 0) & ~pasted
        assert torch.equal(out.image[:, real_px], bg[:, real_px])


def test_draws_with_room_do_not_paste_on_top(confluent):
    """One image with free room beside the confluent ones: draws onto it place objects in free
    space and hide no real cell (the on-top paste is only for images without room)."""
    free = confluent_labels(192, 192, 45, 9)
    free[:, 96:] = 0
    img = confluent[0].image.clone()
    data = confluent[:2] + [AnnotatedImage(img, torch.from_numpy(free), name="half")]
    comp = CellCompositor(CompositorConfig().replace(group_by=None), seed=0).fit(data, progress=False)
    seen = 0
    for i in range(20):
        meta = comp.sample(torch.Generator().manual_seed(i)).meta
        if comp.pools.backgrounds[meta["background"]].name == "half" and meta["objects"]:
            seen += 1
            assert meta["hidden_real_cells"] == 0
    assert seen


def test_a_dense_dsb_field_keeps_its_inner_nuclei(dsb_fluo):
    """DSB 028_9ebcfaf23229: 58 nuclei, 43 of them touching in one cluster that reaches the frame.
    Uncut, the cluster is one border object and all 43 nuclei are lost to the pools; cut, its inner
    nuclei form parts that do not touch the frame."""
    from iaaa.synthesis.objects import ObjectConfig, group_instances

    s = next(x for x in dsb_fluo if x.name.startswith("028_9ebcfaf23229"))
    whole = group_instances(s.labels, ObjectConfig(sheet_cells=None))
    cut = group_instances(s.labels, ObjectConfig())
    assert int(whole.sizes.max()) == 43 and bool(whole.border[int(whole.sizes.argmax())])
    assert int(cut.sizes.max()) <= 8
    kept = lambda g: int(g.sizes[~g.border].sum())  # noqa: E731
    assert kept(cut) >= kept(whole) + 15
