"""The COCO/RLE codec (iaaa.data.coco): exact round trips, identity with pycocotools' own
encoder, validation, and O(image) memory when encoding many cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from iaaa.data.coco import coco_masks, labels_to_rle, mask_runs, paint_runs, rle_counts, rle_string_counts, rle_to_labels, segmentation_runs
from iaaa.errors import IaaaError
from iaaa.label_maps import instance_ids, labels_to_boxes, labels_to_masks, masks_to_labels
from iaaa.structures import AnnotatedImage

ROOT = Path(__file__).resolve().parents[2]


@st.composite
def label_maps(draw, max_side=40, max_instances=12):
    """Random maps: pixel noise or rectangles (runs that cross column boundaries and touch every
    border), ids sparse and above 255 and 65535."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    n = draw(st.integers(0, max_instances))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    values = torch.randperm(1000, generator=g)[:n] + 1
    values = values * draw(st.sampled_from([1, 257, 65537, 10**9]))
    if draw(st.booleans()):
        table = torch.cat([torch.zeros(1, dtype=torch.int64), values])
        return table[torch.randint(0, n + 1, (h, w), generator=g)]
    labels = torch.zeros(h, w, dtype=torch.int64)
    for v in values.tolist():
        y0, x0 = torch.randint(0, h, (1,), generator=g).item(), torch.randint(0, w, (1,), generator=g).item()
        y1, x1 = torch.randint(y0, h, (1,), generator=g).item(), torch.randint(x0, w, (1,), generator=g).item()
        labels[y0 : y1 + 1, x0 : x1 + 1] = v
    return labels


def _pycocotools_rle(labels: torch.Tensor, ids: torch.Tensor) -> list[dict]:
    """What the writer did before: one full-size mask per instance through pycocotools.encode."""
    masks, _ = labels_to_masks(labels, ids, dtype=torch.uint8)
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.numpy().transpose(1, 2, 0)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return list(rles)


@settings(max_examples=150, deadline=None)
@given(label_maps())
def test_rle_identical_to_pycocotools_and_decodes_exactly(labels):
    h, w = labels.shape
    ids = instance_ids(labels)
    rles = labels_to_rle(labels)
    assert json.dumps(rles) == json.dumps(_pycocotools_rle(labels, ids))
    assert torch.equal(rle_to_labels(rles, (h, w), ids.tolist()), labels)
    if ids.numel():
        decoded = mask_utils.decode([{**r, "counts": r["counts"].encode()} for r in rles])
        assert torch.equal(masks_to_labels(torch.from_numpy(decoded.transpose(2, 0, 1).copy()), ids), labels)


@settings(max_examples=80, deadline=None)
@given(label_maps())
def test_coco_masks_boxes_and_areas(labels):
    ids = instance_ids(labels)
    # absent ids: empty mask, zero box. Drawn ids are k * f (k <= 1000, f in 1, 257, 65537, 1e9),
    # so 1001 (7 * 11 * 13) never occurs; 7 did (hypothesis found it: the id was then asked twice).
    asked = torch.cat([ids, torch.tensor([1001, 10**12 + 1])])
    rles, boxes, areas = coco_masks(labels, asked)
    assert json.dumps(rles) == json.dumps(_pycocotools_rle(labels, asked))
    assert torch.equal(boxes, labels_to_boxes(labels, asked).to(torch.int64))
    assert areas.tolist() == [int((labels == i).sum()) for i in asked.tolist()]


@settings(max_examples=40, deadline=None)
@given(labels=label_maps())
def test_full_roundtrip_through_coco_file(tmp_path_factory, labels):
    """label map -> COCO file -> pycocotools -> label map, and -> read_coco, zero differing pixels."""
    from pycocotools.coco import COCO

    from iaaa.data import read_coco, write_coco

    h, w = labels.shape
    d = tmp_path_factory.mktemp("coco")
    write_coco([AnnotatedImage(torch.zeros((1, h, w), dtype=torch.uint8), labels, name="x")], d / "ann.json", d / "images")
    coco = COCO(str(d / "ann.json"))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    ids = instance_ids(labels)
    assert len(anns) == ids.numel()
    back = np.zeros((h, w), dtype=np.int64)
    for ann, i in zip(anns, ids.tolist()):
        m = coco.annToMask(ann)
        assert not (back[m > 0]).any()
        back[m > 0] = i
    assert np.array_equal(back, labels.numpy())
    if h >= 8 and w >= 8:  # the readers refuse smaller images
        (read,) = read_coco(d / "ann.json", d / "images")
        lut = torch.cat([torch.zeros(1, dtype=torch.int64), ids])
        assert torch.equal(lut[read.labels], labels)


def test_rle_is_json_ready():
    labels = torch.tensor([[0, 1, 1], [2, 2, 0]])
    rles = labels_to_rle(labels)
    json.dumps(rles)
    assert [r["size"] for r in rles] == [[2, 3], [2, 3]]
    assert labels_to_rle(torch.zeros(3, 4, dtype=torch.int64)) == []


@settings(max_examples=60, deadline=None)
@given(label_maps(max_instances=3))
def test_string_and_list_counts_agree(labels):
    h, w = labels.shape
    for r in labels_to_rle(labels):
        runs = rle_string_counts(r["counts"])
        assert rle_counts(r, h, w).tolist() == runs and sum(runs) == h * w
        listed = {"size": [h, w], "counts": runs}
        assert [a.tolist() for a in segmentation_runs(listed, h, w)] == [a.tolist() for a in segmentation_runs(r, h, w)]
        mask = mask_utils.decode({**r, "counts": r["counts"].encode()})
        assert [a.tolist() for a in mask_runs(mask)] == [a.tolist() for a in segmentation_runs(r, h, w)]


def test_rle_to_labels_overlaps_and_bad_rles():
    masks = torch.zeros(2, 3, 3, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[1, 1:, 1:] = True
    rles = [{**r, "counts": r["counts"].decode()} for r in mask_utils.encode(np.asfortranarray(masks.numpy().transpose(1, 2, 0).astype(np.uint8)))]
    with pytest.raises(IaaaError, match="^masks overlap at 1 pixels"):
        rle_to_labels(rles, (3, 3))
    for mode in ("first", "last"):
        assert torch.equal(rle_to_labels(rles, (3, 3), [4, 9], overlap=mode), masks_to_labels(masks, [4, 9], overlap=mode))
    with pytest.raises(IaaaError, match=r"^rle 1: RLE size \[3, 4\] differs from the image size \[3, 3\]$"):
        rle_to_labels([rles[0], {"size": [3, 4], "counts": [12]}], (3, 3))
    with pytest.raises(IaaaError, match=r"^rle 0: RLE counts cover 8 pixels, but the image has 3x3 = 9$"):
        rle_to_labels([{"size": [3, 3], "counts": [5, 3]}], (3, 3))
    with pytest.raises(IaaaError, match=r"^rle 0: .*outside the RLE alphabet$"):
        rle_to_labels([{"size": [3, 3], "counts": "é"}], (3, 3))
    with pytest.raises(IaaaError, match=r"^ids: 1 ids for 2 RLEs$"):
        rle_to_labels(rles, (3, 3), [1])
    with pytest.raises(IaaaError, match="overlap must be one of"):
        paint_runs([], (3, 3), overlap="max")
    assert torch.equal(rle_to_labels([], (2, 5)), torch.zeros(2, 5, dtype=torch.int64))


def test_paint_runs_counts_overlaps_without_expanding_them():
    # 50 instances covering the whole image: painted in image-sized batches, last one wins.
    full = (np.array([0], np.int64), np.array([12], np.int64))
    painted, overlap = paint_runs([full] * 50, (3, 4))
    assert overlap == 12 and bool((painted == 50).all())
    painted, _ = paint_runs([full] * 50, (3, 4), overlap="first")
    assert bool((painted == 1).all())


# ---------------------------------------------------------------------------------------- memory
#
# Encoding a 2048x2048 label map of ~10,000 cells runs in a subprocess under RLIMIT_AS = its own
# address space after building the map, plus HEADROOM; a control shows the old full-mask path
# (one 4 MB mask per cell, 40 GB in all) does not fit in the same limit.

HEADROOM = 768 << 20

_ENCODE_SCRIPT = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from iaaa.data.coco import coco_masks, rle_to_labels
from iaaa.label_maps import instance_ids, labels_to_masks
import pycocotools.mask
def vmsize():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
side, step = 2048, 20
yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
inside = (yy % step - step // 2) ** 2 + (xx % step - step // 2) ** 2 < 81
cell = (yy // step) * (side // step + 1) + xx // step
labels = torch.where(inside, cell * 7 + 300, torch.zeros_like(cell))  # ids > 255, with gaps
labels[:, :3] = 70000  # one more instance along the left border
del yy, xx, inside, cell
ids = instance_ids(labels)
limit = vmsize() + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    if sys.argv[1] == "runs":
        rles, boxes, areas = coco_masks(labels, ids)
        assert torch.equal(rle_to_labels(rles, (side, side), ids.tolist()), labels)
    else:
        masks, _ = labels_to_masks(labels.T.contiguous(), ids, dtype=torch.uint8)
        rles = pycocotools.mask.encode(masks.numpy().transpose(2, 1, 0))
except (MemoryError, RuntimeError) as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__}))
    sys.exit(0)
print(json.dumps({"ok": True, "instances": int(ids.numel())}))
"""


def _encode_under_limit(path: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _ENCODE_SCRIPT, path, str(HEADROOM)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_encoding_many_cells_fits_in_image_sized_memory():
    res = _encode_under_limit("runs")
    assert res["ok"], res
    assert res["instances"] > 10_000


def test_control_full_mask_encoding_exceeds_the_limit():
    res = _encode_under_limit("masks")
    assert not res["ok"], "the full-mask path fit in the limit, so the limit proves nothing"
