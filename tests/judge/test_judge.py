"""The downstream judge's building blocks: 3-class targets and seeded growth, DSB scoring, the
automatic minimum area. Protocols, augmentation, folds and the end-to-end runs are in
tests/judge/test_judge_protocols.py, the CLI in tests/judge/test_judge_cli.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.judge import auto_min_area, class_targets, instances_from_classes, iou_matrix, score_image, score_images
from iaaa.judge.targets import BOUNDARY, INTERIOR


def _rectangles(draw_boxes, size=(32, 32), gap=1):
    """A label map of non-touching rectangles (at least ``gap`` background pixels apart)."""
    lab = torch.zeros(size, dtype=torch.int64)
    k = 0
    for y, x, h, w in draw_boxes:
        y1, x1 = min(y + h, size[0]), min(x + w, size[1])
        if y1 - y < 3 or x1 - x < 3:
            continue
        if lab[max(0, y - gap) : y1 + gap, max(0, x - gap) : x1 + gap].any():
            continue
        k += 1
        lab[y:y1, x:x1] = k
    return lab


boxes = st.lists(st.tuples(st.integers(0, 28), st.integers(0, 28), st.integers(3, 12), st.integers(3, 12)), max_size=8)


# ----------------------------------------------------------------------------- targets


def test_class_targets_hand_case():
    lab = torch.zeros(6, 9, dtype=torch.int64)
    lab[1:5, 1:5] = 1
    lab[1:5, 5:8] = 2  # touches cell 1
    cls = class_targets(lab)
    want = torch.tensor([
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 2, 2, 2, 2, 2, 2, 2, 0],
        [0, 2, 1, 1, 2, 2, 1, 2, 0],
        [0, 2, 1, 1, 2, 2, 1, 2, 0],
        [0, 2, 2, 2, 2, 2, 2, 2, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ])
    assert torch.equal(cls, want)
    # The frame is not a boundary: a cell filling the crop is all interior.
    assert torch.equal(class_targets(torch.ones(4, 4, dtype=torch.int64)), torch.full((4, 4), INTERIOR))
    # Batched equals per-image, and a wider band only adds boundary.
    both = torch.stack([lab, lab.flip(-1)])
    assert torch.equal(class_targets(both)[1], class_targets(lab.flip(-1)))
    wide = class_targets(lab, width=2)
    assert bool(((cls == BOUNDARY) <= (wide == BOUNDARY)).all()) and int((wide == BOUNDARY).sum()) > int((cls == BOUNDARY).sum())


def test_seeded_growth_splits_touching_cells_and_keeps_orphans():
    lab = torch.zeros(6, 9, dtype=torch.int64)
    lab[1:5, 1:5] = 1
    lab[1:5, 5:8] = 2
    got = instances_from_classes(class_targets(lab))
    assert got.max() == 2 and torch.equal(got > 0, lab > 0)
    # Each seed keeps its own interior pixels.
    assert got[2, 2] != got[2, 6]
    # A boundary-only ring without interior becomes an instance of its own; min_area drops it.
    cls = torch.zeros(8, 8, dtype=torch.int64)
    cls[1:4, 1:4] = BOUNDARY
    cls[5:8, 5:8] = INTERIOR
    assert int(instances_from_classes(cls).max()) == 2
    assert int(instances_from_classes(cls, min_area=10).max()) == 0
    assert int(instances_from_classes(torch.zeros(5, 5, dtype=torch.int64)).max()) == 0


@settings(max_examples=40, deadline=None)
@given(boxes)
def test_targets_round_trip_for_separate_cells(bx):
    lab = _rectangles(bx)
    got = instances_from_classes(class_targets(lab))
    # Same instances up to renumbering: each true cell is exactly one predicted cell.
    assert score_image(lab, got).mean_ap == 1.0


# ----------------------------------------------------------------------------- scoring


def test_score_hand_case():
    true = torch.zeros(4, 20, dtype=torch.int64)
    true[0, 0:13] = 1  # 13 px
    true[2, 0:5] = 2  # never predicted: FN
    pred = torch.zeros_like(true)
    pred[0, 0:9] = 7  # IoU 9/13 = 0.692 with true 1
    pred[3, 10:15] = 3  # predicts nothing true: FP
    iou = iou_matrix(true, pred)
    assert iou.shape == (2, 2)
    assert iou[0].tolist() == [0.0, pytest.approx(9 / 13)] and iou[1].tolist() == [0.0, 0.0]
    s = score_image(true, pred)
    # IoU 0.692 matches at t = 0.50, 0.55, 0.60, 0.65 (TP 1, FP 1, FN 1: 1/3), not above (0/4).
    assert s.mean_ap == pytest.approx(4 * (1 / 3) / 10)
    assert s.ap50 == pytest.approx(1 / 3) and s.f1_50 == pytest.approx(0.5)
    assert (s.n_true, s.n_pred, s.tp50) == (2, 2, 1)
    agg = score_images([true, true], [pred, true])
    assert agg["mean_ap"] == pytest.approx((4 / 30 + 1.0) / 2) and agg["tp50"] == 3
    per = agg["per_image"]
    assert per["mean_ap"] == [pytest.approx(4 / 30), 1.0] and per["n_pred"] == [2, 2] and per["tp50"] == [1, 2] and per["n_true"] == [2, 2]


def test_iou_matrix_equals_brute_force():
    g = torch.Generator().manual_seed(3)
    true = torch.randint(0, 5, (12, 12), generator=g)
    pred = torch.randint(0, 4, (12, 12), generator=g)
    iou = iou_matrix(true, pred)
    for i, a in enumerate(torch.unique(true[true > 0]).tolist()):
        for j, b in enumerate(torch.unique(pred[pred > 0]).tolist()):
            ta, pb = true == a, pred == b
            assert iou[i, j].item() == pytest.approx((ta & pb).sum().item() / (ta | pb).sum().item())


@settings(max_examples=40, deadline=None)
@given(boxes, st.randoms(use_true_random=False))
def test_score_properties(bx, rnd):
    lab = _rectangles(bx, gap=0)
    n = int(lab.max())
    assert score_image(lab, lab).mean_ap == 1.0
    empty = torch.zeros_like(lab)
    assert score_image(lab, empty).mean_ap == (0.0 if n else 1.0)
    assert score_image(empty, lab).mean_ap == (0.0 if n else 1.0)
    # Renumbering the predicted instances (any ids, any order) changes nothing.
    perm = list(range(1, n + 1))
    rnd.shuffle(perm)
    lut = torch.tensor([0] + [5 * p + 1 for p in perm])
    shifted = lab.roll(1, 0)
    assert score_image(lab, lut[shifted]) == score_image(lab, shifted)


def test_auto_min_area_is_a_quarter_of_the_small_cells():
    lab = torch.zeros(40, 40, dtype=torch.int64)
    lab[0:20, 0:20] = 1  # 400 px
    lab[30:40, 30:40] = 2  # 100 px
    # 1st percentile of (400, 100) by linear interpolation: 103; a quarter: 25.
    assert auto_min_area([(torch.zeros(1, 40, 40), lab)]) == 25
    assert auto_min_area([(torch.zeros(1, 4, 4), torch.zeros(4, 4, dtype=torch.int64))]) == 1
