"""Round trips of every conversion in iaaa.structures / iaaa.label_maps, property-based (COCO RLE: test_coco.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes as tv_masks_to_boxes

from iaaa.errors import IaaaError
from iaaa.structures import (
    AnnotatedImage,
    as_annotated,
    dtype_range,
    from_float,
    from_tv_tensors,
    instance_ids,
    labels_to_boxes,
    labels_to_masks,
    masks_to_boxes,
    masks_to_labels,
    relabel_sequential,
    to_float,
    to_tv_tensors,
)


@st.composite
def label_maps(draw, max_side=40, max_instances=12):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    n = draw(st.integers(0, max_instances))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    # Sparse, non-contiguous ids (gaps and large values) exercise relabelling.
    values = torch.randperm(1000, generator=g)[:n] + 1
    choice = torch.randint(0, n + 1, (h, w), generator=g)
    table = torch.cat([torch.zeros(1, dtype=torch.int64), values])
    return table[choice]


@settings(max_examples=60, deadline=None)
@given(label_maps())
def test_labels_masks_roundtrip(labels):
    masks, ids = labels_to_masks(labels)
    assert torch.equal(ids, instance_ids(labels))
    assert masks.shape == (ids.numel(), *labels.shape)
    assert torch.equal(masks_to_labels(masks, ids), labels)


@settings(max_examples=30, deadline=None)
@given(label_maps())
def test_masks_in_shared_memory_equal_the_plain_ones(labels):
    masks, ids = labels_to_masks(labels, dtype=torch.uint8)
    shared, ids2 = labels_to_masks(labels, dtype=torch.uint8, shared=True)
    assert shared.is_shared() and shared.dtype == torch.uint8 and torch.equal(ids2, ids) and torch.equal(shared, masks)


@settings(max_examples=60, deadline=None)
@given(label_maps())
def test_boxes_match_torchvision(labels):
    masks, ids = labels_to_masks(labels)
    if ids.numel():
        expected = tv_masks_to_boxes(masks).float()
        assert torch.equal(masks_to_boxes(masks), expected)
        assert torch.equal(labels_to_boxes(labels), expected)
    else:
        assert labels_to_boxes(labels).shape == (0, 4)


@settings(max_examples=60, deadline=None)
@given(label_maps(), st.lists(st.integers(0, 1005), max_size=6), st.booleans())
def test_boxes_by_slices_equal_the_bincount_tables(labels, asked, int32):
    # CPU label maps are boxed by scipy's find_objects; the bincount tables (the GPU's path) are
    # the reference: every asked id, absent ones and the background's 0 included.
    import iaaa.label_maps as L

    lab = labels.to(torch.int32) if int32 else labels
    ids = torch.tensor(asked, dtype=torch.int64) if asked else None
    got = L._ids_and_boxes(lab, ids)
    old = L._FIND_OBJECTS_MAX
    try:
        L._FIND_OBJECTS_MAX = -1
        want = L._ids_and_boxes(lab, ids)
    finally:
        L._FIND_OBJECTS_MAX = old
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert torch.equal(L.instance_boxes(lab), labels_to_boxes(lab).to(torch.int64))


@settings(max_examples=40, deadline=None)
@given(label_maps())
def test_relabel_sequential(labels):
    new, old = relabel_sequential(labels)
    assert torch.equal(old, instance_ids(labels))
    assert torch.equal(instance_ids(new), torch.arange(1, old.numel() + 1))
    # new k sits exactly where old[k-1] was
    lut = torch.cat([torch.zeros(1, dtype=torch.int64), old])
    assert torch.equal(lut[new], labels)


def test_masks_to_labels_overlap_modes():
    masks = torch.zeros(2, 3, 3, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[1, 1:, 1:] = True
    with pytest.raises(ValueError, match="overlap"):
        masks_to_labels(masks)
    assert masks_to_labels(masks, overlap="last")[1, 1] == 2
    assert masks_to_labels(masks, overlap="first")[1, 1] == 1


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_float_roundtrip_is_lossless(dtype):
    hi = int(dtype_range(dtype)[1])
    x = torch.arange(hi + 1, dtype=torch.int32).to(dtype).view(1, 1, -1)
    f = to_float(x)
    assert f.dtype == torch.float32 and float(f.min()) == 0.0 and float(f.max()) == 1.0
    back = from_float(f, dtype)
    assert back.dtype == dtype
    assert torch.equal(back.to(torch.int32), x.to(torch.int32))


def test_dtype_range():
    assert dtype_range(torch.uint8) == (0, 255)
    assert dtype_range(torch.uint16) == (0, 65535)
    assert dtype_range(torch.float32) == (0, 1)
    with pytest.raises(TypeError):
        dtype_range(torch.bool)


@settings(max_examples=30, deadline=None)
@given(label_maps(), st.integers(1, 5))
def test_tv_tensors_roundtrip(labels, channels):
    h, w = labels.shape
    n = instance_ids(labels).numel()
    classes = torch.arange(n) % 3 + 1
    s = AnnotatedImage(torch.rand(channels, h, w), labels, classes, name="x")
    image, target = to_tv_tensors(s)
    assert isinstance(image, tv_tensors.Image) and isinstance(target["masks"], tv_tensors.Mask)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and tuple(target["boxes"].canvas_size) == (h, w)
    assert target["masks"].shape == (n, h, w) and target["labels"].dtype == torch.int64
    back = from_tv_tensors(image, target)
    assert torch.equal(back.labels, labels) and torch.equal(back.class_ids, classes)
    # from masks + labels alone (no label_map): instances numbered 1..N, same pixels and classes
    alt = from_tv_tensors(image, {"masks": target["masks"], "labels": target["labels"]})
    assert torch.equal(alt.labels > 0, labels > 0) and torch.equal(alt.class_ids, classes)


def test_annotated_image_unpacks_and_validates():
    img = torch.zeros(1, 4, 5, dtype=torch.uint8)
    lab = torch.zeros(4, 5, dtype=torch.int64)
    lab[1, 1] = 3
    s = AnnotatedImage(img, lab, name="a")
    image, labels = s
    assert image is s.image and torch.equal(labels, lab)
    assert s.num_instances == 1 and s.class_ids.tolist() == [1]
    assert as_annotated((img, lab)).num_instances == 1
    assert s.relabeled().labels[1, 1] == 1
    with pytest.raises(ValueError, match="does not match"):
        AnnotatedImage(img, torch.zeros(3, 5, dtype=torch.int64), name="bad")
    with pytest.raises(ValueError, match="negative"):
        AnnotatedImage(img, lab - 1, name="neg")
    with pytest.raises(ValueError, match="integers"):
        AnnotatedImage(img, lab.float() + 0.5, name="frac")
    with pytest.raises(ValueError, match="class ids"):
        AnnotatedImage(img, lab, torch.tensor([1, 2]))
    with pytest.raises(TypeError):
        as_annotated(42)


def test_detection_pairs_are_samples_too():
    # What a torchvision Mask R-CNN dataset (and RealDataset) returns: fit(dataset) took such
    # pairs as (image, labels) and failed on the dict with a NumPy TypeError.
    from iaaa import CellCompositor, RealDataset, simulate_cells

    real = simulate_cells(3, seed=4, size=(64, 72))
    for i, item in enumerate(RealDataset(real)):
        s = as_annotated(item)
        assert torch.equal(s.labels, real[i].labels) and torch.equal(s.class_ids, real[i].class_ids)
        image, target = item
        masks_only = as_annotated((image, {"masks": target["masks"], "labels": target["labels"] + 1}))
        assert torch.equal(masks_only.labels, real[i].labels) and torch.equal(masks_only.class_ids, real[i].class_ids + 1)
    assert CellCompositor().fit(RealDataset(real), progress=False).pools.stats.n_images == 3
    with pytest.raises(IaaaError, match="a detection target needs 'masks' or 'label_map'.*'boxes'"):
        as_annotated((image, {"boxes": target["boxes"]}))
    with pytest.raises(IaaaError, match=r"a sample dict needs 'image' and 'labels' keys; it lacks \['labels'\]"):
        as_annotated({"image": image, "mask": target["label_map"]})


def test_huge_sparse_ids_take_the_fallback_path():
    labels = torch.zeros(4, 4, dtype=torch.int64)
    labels[0, 0] = 10**12
    labels[1, 1] = 7
    assert instance_ids(labels).tolist() == [7, 10**12]
    new, old = relabel_sequential(labels)
    assert old.tolist() == [7, 10**12] and new[0, 0] == 2 and new[1, 1] == 1 and int(new.sum()) == 3


def test_huge_sparse_ids_masks_and_boxes():
    labels = torch.zeros(5, 6, dtype=torch.int64)
    labels[0, 1:3] = 10**12
    labels[2:4, 4] = 7
    masks, ids = labels_to_masks(labels)
    assert ids.tolist() == [7, 10**12]
    assert torch.equal(masks_to_labels(masks, ids), labels)
    assert labels_to_boxes(labels).tolist() == [[4, 2, 4, 3], [1, 0, 2, 0]]
    # ids asked for but absent get empty masks and zero boxes, in the order asked
    asked = torch.tensor([10**12, 5, 7])
    m2, _ = labels_to_masks(labels, asked)
    assert m2[1].sum() == 0 and torch.equal(m2[0], labels == 10**12)
    assert labels_to_boxes(labels, asked).tolist() == [[1, 0, 2, 0], [0, 0, 0, 0], [4, 2, 4, 3]]
    assert labels_to_boxes(labels, torch.tensor([3, 7])).tolist() == [[0, 0, 0, 0], [4, 2, 4, 3]]


@settings(max_examples=30, deadline=None)
@given(label_maps())
def test_uint8_masks_match_bool(labels):
    m8, ids = labels_to_masks(labels, dtype=torch.uint8)
    mb, _ = labels_to_masks(labels)
    assert m8.dtype == torch.uint8 and torch.equal(m8.bool(), mb)
    assert torch.equal(masks_to_boxes(m8), masks_to_boxes(mb))


def test_pasted_windows_are_part_of_the_data_model():
    from iaaa.structures import PastedWindows

    rec = PastedWindows(torch.tensor([2, 1]), torch.tensor([[0, 0, 3, 3], [4, 4, 5, 6]]))
    assert rec.ids.tolist() == [2, 1] and rec.boxes.shape == (2, 4)
    with pytest.raises(Exception):
        rec.ids = torch.tensor([0])  # frozen: the datasets trust it as recorded


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(4, 9), st.integers(0, 2**31 - 1))
def test_split_instances_counts_separate_regions_of_one_value(k, side, seed):
    from iaaa.label_maps import split_instances

    # k squares on a grid with free rows and columns between them, plus a one-pixel speck.
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(2 + 12 * 6, 2 + 12 * 6, dtype=torch.int64)
    cells = torch.randperm(36, generator=g)[:k].tolist()
    for c in cells:
        y, x = 2 + 12 * (c // 6), 2 + 12 * (c % 6)
        lab[y : y + side, x : x + side] = 7
    lab[0, 0] = 7
    want = {7: [side * side] * k + [1]} if k >= 2 else {}
    assert split_instances(lab) == want
    # Each square its own value: no instance is split, whatever the specks.
    own = lab.clone()
    for j, c in enumerate(cells):
        y, x = 2 + 12 * (c // 6), 2 + 12 * (c % 6)
        own[y : y + side, x : x + side] = j + 1
    assert split_instances(own) == {}
    # Diagonal neighbours are one region (8-connected), as hand-drawn outlines are.
    diag = torch.zeros(14, 14, dtype=torch.int64)
    diag[1:6, 1:6], diag[6:11, 6:11] = 3, 3
    assert split_instances(diag) == {}


def test_check_instance_maps_refuses_binary_masks_and_warns_on_one():
    import warnings

    from iaaa.label_maps import check_instance_maps

    binary = torch.zeros(40, 40, dtype=torch.int64)
    binary[2:10, 2:10], binary[20:30, 20:30] = 255, 255
    cells = torch.zeros(40, 40, dtype=torch.int64)
    cells[2:10, 2:10], cells[20:30, 20:30] = 1, 2
    with pytest.raises(IaaaError, match=r"m0\.png: label value 255 covers 2 separate regions \(100, 64 px\).*binary \(semantic\) masks"):
        check_instance_maps([("m0.png", binary), ("empty.png", torch.zeros(40, 40, dtype=torch.int64)), ("m1.png", binary)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_instance_maps([("m0.png", binary), ("m1.png", cells)])
        check_instance_maps([("m1.png", cells), ("one.png", (cells == 1).to(torch.int64))])  # one cell per map is fine
    assert [str(w.message).split(":")[0] for w in caught] == ["m0.png"]


def test_check_instance_maps_refuses_a_labelled_background():
    from iaaa.label_maps import check_instance_maps

    cells = torch.zeros(40, 50, dtype=torch.int64)
    cells[2:10, 2:10], cells[20:30, 20:30] = 1, 2
    shifted = torch.where(cells == 0, torch.ones_like(cells), cells + 1)  # background numbered 1
    with pytest.raises(IaaaError, match=r"b\.png: no pixel is 0 \(background\), and label 1 covers 92% of the map and all four edges"):
        check_instance_maps([("b.png", shifted), ("c.png", shifted)])
    check_instance_maps([("b.png", shifted), ("c.png", cells)])  # one map with background: not every map
    # A confluent field segmented to the last pixel: no label dominates, nothing refused.
    tiles = (torch.arange(40).view(-1, 1) // 10) * 5 + torch.arange(50).view(1, -1) // 10 + 1
    check_instance_maps([("t.png", tiles)])


@settings(max_examples=10, deadline=None)
@given(st.integers(100, 160), st.integers(100, 160), st.integers(0, 2**31 - 1))
def test_boxes_of_more_instances_than_the_tables_hold(h, w, seed):
    # More distinct labels than the row/column tables allow for the size (an image read as a
    # label map): boxes by one scatter, same as the brute force (this recursed without end).
    from iaaa.label_maps import instance_boxes

    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 50_000, (h, w), generator=g)
    ids = instance_ids(lab)
    assert ids.numel() * (h + w) > 64 * (h * w + 4096)
    boxes = instance_boxes(lab).numpy()
    a, ys, xs = lab.numpy().ravel(), *np.divmod(np.arange(h * w), w)
    want = np.stack([np.full(50_000, w), np.full(50_000, h), np.full(50_000, -1), np.full(50_000, -1)], 1)
    np.minimum.at(want[:, 0], a, xs)
    np.minimum.at(want[:, 1], a, ys)
    np.maximum.at(want[:, 2], a, xs)
    np.maximum.at(want[:, 3], a, ys)
    assert np.array_equal(boxes, want[ids.numpy()])


def test_check_instance_maps_refuses_an_image_read_as_labels():
    from iaaa.label_maps import check_instance_maps

    g = torch.Generator().manual_seed(0)
    image = torch.randint(1, 256, (64, 64), generator=g)  # intensities: a new value at almost every pixel
    with pytest.raises(IaaaError, match=r"img\.png: \d+% of neighbouring labelled pixels differ.*folders swapped"):
        check_instance_maps([("img.png", image)])
    # The most fragmented honest map: touching instances 2 px wide (half the pairs change label).
    stripes = (torch.arange(64).view(1, -1) // 2 + 1).expand(64, 64).contiguous()
    check_instance_maps([("stripes.png", stripes)])


def test_boxes_of_absent_huge_ids_are_zero():
    lab = torch.zeros(3, 3, dtype=torch.int64)
    assert labels_to_boxes(torch.zeros(1, 1, dtype=torch.int64), torch.tensor([5_000_000])).tolist() == [[0, 0, 0, 0]]
    lab[1, 1] = 10**9
    assert labels_to_boxes(lab, torch.tensor([10**9, 7])).tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]]
