"""iaaa.synthesis.canvas: the occupancy table (row prefix counts) and every query on it against
brute-force counts over the label map, including boxes and objects that leave the frame."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.synthesis.canvas import Canvas, grown_runs, occupancy_table

ROWS = 64  # test heights of a few tens of rows and more


def _labels(seed: int, h: int, w: int, density: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), dtype=np.int64)
    for k in range(1, 1 + int(density * h * w / 30)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        lab[y : y + rng.integers(1, 9), x : x + rng.integers(1, 9)] = k
    return lab


def _canvas(lab: np.ndarray, gap: int = 0) -> Canvas:
    h, w = lab.shape
    return Canvas(torch.zeros(1, h, w), np.zeros((1, h, w), dtype=np.float32), lab.copy(), gap=gap)


def _object(seed: int) -> np.ndarray:
    """A small labelled blob (not a rectangle) inside a crop with an empty margin."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 14, size=2)
    yy, xx = np.mgrid[:h, :w]
    blob = ((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 <= 1.0
    lab = np.zeros((h + 4, w + 4), dtype=np.int64)
    lab[2 : 2 + h, 2 : 2 + w] = blob * 7
    return lab


def test_occupancy_table_counts_each_row_left_of_each_column():
    h, w = 2 * ROWS + 21, 37
    lab = _labels(0, h, w, 0.2)
    table = occupancy_table(lab)
    occ = lab > 0
    assert table.shape == (h + 1, w + 1) and table.dtype == np.int32
    for y in (0, 1, 17, h - 1):
        for x in (0, 5, w):
            assert table[y, x] == occ[y, :x].sum()
    assert np.array_equal(table[:h, -1], occ.sum(1)) and not table[h].any()  # row h: the zero row


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gap=st.integers(0, 4), th=st.integers(1, 2 * ROWS + 5), tw=st.integers(1, 30))
def test_occupied_counts_labelled_pixels_in_grown_boxes(seed, gap, th, tw):
    h, w = 3 * ROWS - 7, 90
    lab = _labels(seed, h, w, 0.15)
    canvas = _canvas(lab, gap)
    rng = np.random.default_rng(seed + 1)
    th = min(th, h)
    x = rng.integers(0, w - tw + 1, size=20)
    y = rng.integers(0, h - th + 1, size=20)
    got = canvas.occupied(x, y, th, tw)
    occ = lab > 0
    want = [occ[max(b - gap, 0) : b + th + gap, max(a - gap, 0) : a + tw + gap].sum() for a, b in zip(x, y)]
    assert got.tolist() == want


def test_grown_runs_describe_the_dilated_mask():
    for seed in range(12):
        obj = _object(seed)
        ys, xs = np.nonzero(obj)
        tight = (ys.min(), ys.max(), xs.min(), xs.max())
        crop = obj[tight[0] : tight[1] + 1, tight[2] : tight[3] + 1] > 0
        for gap in (0, 1, 3):
            dy, dx0, dx1 = grown_runs(obj, tight, gap)
            painted = np.zeros((crop.shape[0] + 2 * gap, crop.shape[1] + 2 * gap), dtype=bool)
            for a, b, c in zip(dy, dx0, dx1):
                assert not painted[a + gap, b + gap : c + gap + 1].any()  # runs do not overlap
                painted[a + gap, b + gap : c + gap + 1] = True
            want = ndi.binary_dilation(np.pad(crop, gap), np.ones((2 * gap + 1, 2 * gap + 1))) if gap else crop
            assert np.array_equal(painted, want), (seed, gap)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gap=st.integers(0, 3))
def test_overlaps_agrees_with_painting_the_grown_object(seed, gap):
    h, w = 2 * ROWS + 9, 70
    lab = _labels(seed, h, w, 0.1)
    canvas = _canvas(lab)
    obj = _object(seed % 97)
    ys, xs = np.nonzero(obj)
    tight = (ys.min(), ys.max(), xs.min(), xs.max())
    runs = grown_runs(obj, tight, gap)
    crop = obj[tight[0] : tight[1] + 1, tight[2] : tight[3] + 1] > 0
    grown = ndi.binary_dilation(np.pad(crop, gap), np.ones((2 * gap + 1, 2 * gap + 1))) if gap else crop
    rng = np.random.default_rng(seed + 2)
    # Candidate corners partly off the frame too: what lies outside is ignored.
    x = rng.integers(-8, w, size=40)
    y = rng.integers(-8, h, size=40)
    got = canvas.overlaps(x, y, runs)
    occ = np.pad(lab > 0, 40)  # room for off-frame positions; the padding is free
    want = [bool((occ[b - gap + 40 : b - gap + 40 + grown.shape[0], a - gap + 40 : a - gap + 40 + grown.shape[1]] & grown).any()) for a, b in zip(x, y)]
    assert got.tolist() == want


def test_mark_updates_the_table_as_a_rebuild_would():
    h, w = 3 * ROWS + 5, 60
    lab = _labels(3, h, w, 0.05)
    canvas = _canvas(lab)
    occ = lab > 0
    rng = np.random.default_rng(4)
    # Objects at the top, in the middle, taller than half the map, at the bottom row.
    for th, y in ((10, 0), (20, ROWS - 6), (ROWS + 12, ROWS - 3), (7, 3 * ROWS - 2)):
        tw = int(rng.integers(3, 15))
        x = int(rng.integers(0, w - tw))
        mask = rng.random((th, tw)) < 0.6
        mask &= ~occ[y : y + th, x : x + tw]  # placement only marks free pixels
        canvas.mark(mask, y, x)
        occ[y : y + th, x : x + tw] |= mask
        assert np.array_equal(canvas.table, occupancy_table(occ.astype(np.int64)))


def test_canvas_starts_from_existing_labels():
    lab = _labels(5, 70, 50, 0.1)
    table = occupancy_table(lab)
    canvas = Canvas(torch.zeros(2, 70, 50), np.zeros((2, 70, 50), dtype=np.float32), lab, table=table)
    assert canvas.next_id == int(lab.max()) + 1
    canvas.mark(np.ones((3, 3), dtype=bool), 0, 0)
    assert np.array_equal(table, occupancy_table(lab))  # the shared table is copied, not written
    empty = Canvas(torch.zeros(1, 10, 12), np.zeros((1, 10, 12), dtype=np.float32))
    assert empty.next_id == 1 and empty.labels.shape == (10, 12) and not empty.labels.any()
    assert empty.occupied(np.array([0]), np.array([0]), 10, 12).tolist() == [0]
