"""SCO / MCO extraction: box merging, classification, crops, context, fragments, real data."""

from __future__ import annotations


import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.boxes import merge_boxes
from iaaa.synthesis import BackgroundConfig, ObjectConfig, extract_objects, group_instances, remove_cells
from iaaa.structures import AnnotatedImage



pytestmark = pytest.mark.usefixtures("one_thread")


def _box(lab: torch.Tensor, k: int, x0: int, y0: int, x1: int, y1: int) -> None:
    lab[y0 : y1 + 1, x0 : x1 + 1] = k


def _connected(a, b, margin):
    return a[0] - margin <= b[2] and b[0] - margin <= a[2] and a[1] - margin <= b[3] and b[1] - margin <= a[3]


# ----------------------------------------------------------------------------- merge_boxes


def test_merge_rules_by_hand():
    b = torch.tensor([[0, 0, 4, 4], [5, 0, 9, 4], [20, 20, 24, 24], [26, 20, 30, 24]])
    # Touching edge to edge (gap 0) merges at margin 1 but not at margin 0; a 1-pixel gap needs margin 2.
    m1, g1 = merge_boxes(b, 1)
    assert m1.tolist() == [[0, 0, 9, 4], [20, 20, 24, 24], [26, 20, 30, 24]]
    assert g1.tolist() == [0, 0, 1, 2]
    m0, _ = merge_boxes(b, 0)
    assert m0.shape[0] == 4
    m2, _ = merge_boxes(b, 2)
    assert m2.tolist() == [[0, 0, 9, 4], [20, 20, 30, 24]]


def test_merge_is_repeated_until_no_two_intersect():
    # A and B overlap; their merged box reaches C, which neither A nor B touches alone.
    b = torch.tensor([[0, 0, 10, 2], [8, 0, 12, 10], [0, 8, 3, 12], [40, 40, 41, 41]])
    assert not _connected(b[0].tolist(), b[2].tolist(), 1) and not _connected(b[1].tolist(), b[2].tolist(), 1)
    merged, group = merge_boxes(b, 1)
    assert merged.tolist() == [[0, 0, 12, 12], [40, 40, 41, 41]]
    assert group.tolist() == [0, 0, 0, 1]


boxes_st = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 15), st.integers(0, 15)).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3])),
    min_size=0, max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(boxes_st, st.integers(0, 4))
def test_merge_properties(boxes, margin):
    b = torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4)
    merged, group = merge_boxes(b, margin)
    m = merged.tolist()
    # No two merged boxes are connected.
    for i in range(len(m)):
        for j in range(i + 1, len(m)):
            assert not _connected(m[i], m[j], margin)
    # Each merged box is exactly the bounding box of its members, and members are connected
    # through chains (here: a group of one box is that box).
    for j, mb in enumerate(m):
        mem = b[group == j]
        assert mem.shape[0] >= 1
        assert mb == [int(mem[:, 0].min()), int(mem[:, 1].min()), int(mem[:, 2].max()), int(mem[:, 3].max())]


def test_merge_rejects_bad_input():
    with pytest.raises(ValueError, match="boxes"):
        merge_boxes(torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="margin"):
        merge_boxes(torch.zeros(1, 4, dtype=torch.int64), -1)


# ----------------------------------------------------------------------------- classification


def _scene() -> torch.Tensor:
    lab = torch.zeros(64, 64, dtype=torch.int64)
    _box(lab, 1, 5, 5, 10, 10)  # isolated -> SCO
    _box(lab, 2, 20, 5, 25, 10)  # 2 and 3 touch edge to edge -> MCO
    _box(lab, 3, 26, 5, 30, 10)
    # 4 and 5: L-shapes whose boxes overlap but whose pixels never touch -> MCO (paper: box rule)
    lab[20:30, 40] = 4
    lab[29, 40:50] = 4
    lab[21, 44:52] = 5
    lab[21:28, 51] = 5
    _box(lab, 6, 0, 40, 5, 45)  # touches the left border
    _box(lab, 7, 20, 50, 21, 51)  # a 4-pixel fragment, isolated
    return lab


def test_classification_by_hand():
    lab = _scene()
    assert not (lab == 4).roll(1, 0).logical_and(lab == 5).any()  # 4 and 5 do not touch
    g = group_instances(lab, ObjectConfig(grouping="box", margin=1, min_area=10))
    assert g.fragments.tolist() == [7]
    by_members = {tuple(g.ids[g.group == j].tolist()): (g.kinds[j], bool(g.border[j])) for j in range(g.boxes.shape[0])}
    assert by_members == {(1,): ("sco", False), (2, 3): ("mco", False), (4, 5): ("mco", False), (6,): ("sco", True)}
    objs = extract_objects([(torch.zeros(1, 64, 64, dtype=torch.uint8), lab)], ObjectConfig(grouping="box"))
    assert sorted((o.kind, o.source_ids) for o in objs) == [("mco", (2, 3)), ("mco", (4, 5)), ("sco", (1,))]
    objs_b = extract_objects([(torch.zeros(1, 64, 64, dtype=torch.uint8), lab)], ObjectConfig(grouping="box", keep_border=True))
    assert ("sco", (6,)) in [(o.kind, o.source_ids) for o in objs_b]
    # min_area=1 turns the fragment into an SCO of its own.
    assert ("sco", (7,)) in [(o.kind, o.source_ids) for o in extract_objects([(torch.zeros(1, 64, 64), lab)], ObjectConfig(grouping="box", min_area=1))]


def test_margin_zero_keeps_touching_boxes_apart():
    g = group_instances(_scene(), ObjectConfig(grouping="box", margin=0, min_area=10))
    members = sorted(tuple(g.ids[g.group == j].tolist()) for j in range(g.boxes.shape[0]))
    assert (2,) in members and (3,) in members  # adjacent but not intersecting
    assert (4, 5) in members  # their boxes intersect


# ----------------------------------------------------------------------------- crops


def test_object_crop_contents_and_class_ids():
    lab = _scene()
    img = torch.arange(3 * 64 * 64, dtype=torch.float32).reshape(3, 64, 64) / (3 * 64 * 64)
    cls = torch.tensor([5, 6, 7, 8, 9, 10, 11])
    s = AnnotatedImage(img, lab, cls, name="scene")
    for o in extract_objects([s], ObjectConfig(grouping="box")):
        x0, y0, x1, y1 = o.box
        src_lab = lab[y0 : y1 + 1, x0 : x1 + 1]
        assert o.image.dtype == img.dtype and o.image.shape == (3, y1 - y0 + 1, x1 - x0 + 1)
        assert o.source == "scene"
        # Cells renumbered 1..k in source order; other pixels are 0.
        for new, old in enumerate(o.source_ids, start=1):
            assert torch.equal(o.labels == new, src_lab == old)
        assert set(o.labels.unique().tolist()) - {0} == set(range(1, o.num_cells + 1))
        assert o.class_ids.tolist() == [int(cls[i - 1]) for i in o.source_ids]
        own = torch.isin(src_lab, torch.tensor(o.source_ids)) | (src_lab == 0)
        assert torch.equal(o.image[:, own], img[:, y0 : y1 + 1, x0 : x1 + 1][:, own])


def test_context_replaces_foreign_cells_and_mirrors_out_of_frame():
    lab = torch.zeros(40, 40, dtype=torch.int64)
    _box(lab, 1, 10, 10, 15, 15)
    _box(lab, 2, 19, 10, 24, 15)  # 3-pixel gap: a separate object, but inside the other's context
    _box(lab, 3, 2, 30, 6, 34)  # 2 pixels from the left border
    img = torch.full((1, 40, 40), 20, dtype=torch.uint8)
    img[0][lab > 0] = 200
    bg = remove_cells(img, lab, BackgroundConfig(background_method="bilinear")).image
    assert int(bg.max()) < 100
    objs = {o.source_ids: o for o in extract_objects([(img, lab)], ObjectConfig(grouping="box"), context=5, backgrounds=[bg])}
    assert set(objs) == {(1,), (2,), (3,)}
    o1 = objs[(1,)]
    assert o1.box == (5, 5, 20, 20)
    # Pixels of cell 2 inside cell 1's context hold the background, not cell 2.
    foreign = lab[5:21, 5:21] == 2
    assert foreign.any()
    assert torch.equal(o1.image[0][foreign], bg[0, 5:21, 5:21][foreign])
    assert not (o1.labels[foreign]).any()
    o3 = objs[(3,)]
    assert o3.box == (-3, 25, 11, 39)
    assert o3.image.shape == (1, 15, 15)
    # Columns beyond the frame are mirrored background: never a copy of the cell itself.
    assert int(o3.image[0, :, :3].max()) < 100
    assert int((o3.labels > 0).sum()) == 25


def test_fragment_inside_a_crop_is_erased():
    lab = torch.zeros(40, 40, dtype=torch.int64)
    _box(lab, 1, 10, 10, 19, 19)
    lab[12, 12] = 2  # a 1-pixel fragment inside cell 1's box (replaces one of its pixels)
    img = torch.full((1, 40, 40), 10, dtype=torch.uint8)
    img[0][lab > 0] = 250
    objs = extract_objects([(img, lab)], ObjectConfig(grouping="box", min_area=5))
    assert len(objs) == 1 and objs[0].kind == "sco" and objs[0].source_ids == (1,)
    assert int(objs[0].labels[2, 2]) == 0  # fragment pixel is not a cell
    assert int(objs[0].image[0, 2, 2]) < 250  # and shows background


def test_empty_and_invalid_inputs():
    assert extract_objects([(torch.zeros(1, 8, 8), torch.zeros(8, 8, dtype=torch.int64))], ObjectConfig(grouping="box")) == []
    with pytest.raises(ValueError, match="min_area"):
        extract_objects([], ObjectConfig(grouping="box", min_area=0))
    with pytest.raises(ValueError, match="context"):
        extract_objects([], ObjectConfig(grouping="box"), context=-1)
    with pytest.raises(ValueError, match="background"):
        lab = torch.zeros(20, 20, dtype=torch.int64)
        _box(lab, 1, 5, 5, 8, 8)
        _box(lab, 2, 10, 5, 13, 8)
        extract_objects([(torch.zeros(1, 20, 20), lab)], ObjectConfig(grouping="box"), context=4, backgrounds=[torch.zeros(1, 10, 10)])


# ----------------------------------------------------------------------------- real data


def test_real_dsb_objects_account_for_every_cell(dsb_fluo):
    samples = dsb_fluo
    assert len(samples) == 30
    objs = extract_objects(samples, ObjectConfig(grouping="box"), context=3)
    total_cells = 0
    border_cells = 0
    for s in samples:
        g = group_instances(s.labels, ObjectConfig(grouping="box", min_area=10))
        total_cells += int(g.ids.numel())
        border_cells += int(g.sizes[g.border].sum())
    assert sum(o.num_cells for o in objs) + border_cells == total_cells
    kinds = [o.kind for o in objs]
    assert kinds.count("sco") > 100 and kinds.count("mco") > 10
    for o in objs:
        assert (o.kind == "sco") == (o.num_cells == 1)
        assert o.labels.max() == o.num_cells and o.image.dtype == torch.uint8
        # The object keeps a clear ring of context: its cells never touch the crop edge.
        m = o.labels > 0
        assert not (m[:3].any() or m[-3:].any() or m[:, :3].any() or m[:, -3:].any())


def test_extract_with_a_shared_grown_map_is_the_same():
    # fit grows the masks once and hands the map to extraction: same objects as growing inside.
    from iaaa.datasets import simulate_cells
    from iaaa.synthesis.halo import grow_masks
    from iaaa.synthesis.objects import extract

    s = simulate_cells(1, seed=3, size=(160, 160), cells=(12, 16))[0]
    bg = remove_cells(s.image, s.labels, BackgroundConfig(background_method="bilinear")).image
    for cfg in (ObjectConfig(keep_border=True), ObjectConfig(grouping="box", keep_border=True), ObjectConfig(min_area=200, keep_border=True)):
        a, _ = extract(s, cfg, bg, halo=3, context=6)
        b, _ = extract(s, cfg, bg, halo=3, context=6, grown=grow_masks(s.labels, 3))
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            assert x.box == y.box and x.source_ids == y.source_ids
            assert torch.equal(x.image, y.image) and torch.equal(x.labels, y.labels)
