"""The kept contact anchors and the shift test of touching cells give exactly what the one-shot
definitions give (the filters over the whole label map), however cells are added."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from iaaa.synthesis import contacts
from iaaa.synthesis.canvas import Canvas, grown_runs
from iaaa.synthesis.contacts import ContactAnchors, contact_candidates, touching_ids

pytestmark = pytest.mark.usefixtures("one_thread")


def _touching_by_filters(lab: np.ndarray, reach: int) -> np.ndarray:
    """Ids with a pixel whose ``2 reach + 1`` square holds another id (max and min filters)."""
    big = int(lab.max()) + 1
    size = 2 * reach + 1
    hi = ndimage.maximum_filter(lab, size=size, mode="constant", cval=0)
    lo = ndimage.minimum_filter(np.where(lab > 0, lab, big), size=size, mode="constant", cval=big)
    m = lab > 0
    out = np.zeros(big, dtype=bool)
    out[lab[m & ((hi != lab) | (lo != lab))]] = True
    return out


def _random_map(rng: np.random.Generator, h: int, w: int, n: int, top: int) -> np.ndarray:
    lab = np.zeros((h, w), dtype=np.int64)
    for _ in range(n):
        y, x = rng.integers(0, h), rng.integers(0, w)
        lab[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = int(rng.integers(1, top + 1))
    return lab


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(1, 30), w=st.integers(1, 30), n=st.integers(0, 25),
       top=st.sampled_from([3, 40, 300, 70_000]), reach=st.integers(1, 3))
def test_touching_ids_matches_the_filter_definition(seed, h, w, n, top, reach):
    lab = _random_map(np.random.default_rng(seed), h, w, n, top)
    assert np.array_equal(touching_ids(lab, reach), _touching_by_filters(lab, reach))


def _candidates_by_filters(labels, u, th, tw, border, overlaps):
    """contact_candidates as first written: anchors and cells from the 3 x 3 max filter of the
    whole map, centroids from one bincount (the definition the kept anchors must reproduce)."""
    h, w = labels.shape
    n = u.shape[0]
    zeros = (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool))
    occ = labels > 0
    if n == 0 or not occ.any():
        return zeros
    near = ndimage.maximum_filter(labels, size=3, mode="constant", cval=0)
    ay, ax = np.nonzero((near > 0) & ~occ)
    if ay.size == 0:
        return zeros
    pick = np.minimum((u * ay.size).astype(np.int64), ay.size - 1)
    ay, ax = ay[pick], ax[pick]
    cell = near[ay, ax]
    ly, lx = np.nonzero(occ)
    ids = labels[ly, lx]
    cnt = np.maximum(np.bincount(ids, minlength=int(labels.max()) + 1), 1)
    cy, cx = np.bincount(ids, ly, minlength=cnt.size) / cnt, np.bincount(ids, lx, minlength=cnt.size) / cnt
    dy, dx = ay - cy[cell], ax - cx[cell]
    scale = np.maximum(np.maximum(np.abs(dy), np.abs(dx)), 1e-9)
    sy, sx = np.rint(dy / scale).astype(np.int64), np.rint(dx / scale).astype(np.int64)
    stuck = (sy == 0) & (sx == 0)
    sy[stuck] = 1
    steps = np.arange(max(th, tw) + 2)
    py = (ay - (th - 1) // 2)[:, None] + sy[:, None] * steps[None, :]
    px = (ax - (tw - 1) // 2)[:, None] + sx[:, None] * steps[None, :]
    inside = (px >= border) & (py >= border) & (px <= w - tw - border) & (py <= h - th - border)
    busy = np.ones(py.shape, dtype=bool)
    if inside.any():
        busy[inside] = overlaps(px[inside], py[inside])
    free = ~busy & inside
    first = free.argmax(1)
    hit = busy & inside
    ok = free.any(1) & (first > 0) & hit[np.arange(n), np.maximum(first - 1, 0)]
    r = np.arange(n)
    return px[r, first], py[r, first], ok


def _add_object(canvas: Canvas, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """A random object written on free pixels (as placement writes): its tight box, or None."""
    th, tw = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    lab = (rng.random((th, tw)) < 0.8).astype(np.int64)
    if rng.random() < 0.3 and tw > 1:
        lab[:, tw // 2 :] *= 2  # a two-cell object
    lab[0, 0] = max(lab[0, 0], 1)
    y, x = int(rng.integers(0, canvas.h - th + 1)), int(rng.integers(0, canvas.w - tw + 1))
    if canvas.overlaps(np.array([x]), np.array([y]), grown_runs(lab, (0, th - 1, 0, tw - 1), 0))[0]:
        return None
    canvas.write_labels(lab, y, x)
    return y, x, th, tw


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(8, 40), w=st.integers(8, 40), start=st.integers(0, 6), adds=st.integers(1, 8),
       chunk=st.sampled_from([1, 2, 3, 8]))
def test_kept_anchors_give_the_one_shot_candidates(seed, h, w, start, adds, chunk):
    """After any sequence of objects written on free pixels, the kept anchors' candidates equal
    contact_candidates on the label map as it is and the filter definition (same positions and
    verdicts), whatever number of slide steps is queried at a time."""
    default_chunk = contacts.STEP_CHUNK
    contacts.STEP_CHUNK = chunk
    try:
        _check_kept_anchors(seed, h, w, start, adds)
    finally:
        contacts.STEP_CHUNK = default_chunk


def _check_kept_anchors(seed: int, h: int, w: int, start: int, adds: int) -> None:
    rng = np.random.default_rng(seed)
    labels = _random_map(rng, h, w, start, 9)
    canvas = Canvas(torch.zeros(1, h, w), np.zeros((1, h, w)), labels, 0, 0, None, int(labels.max()) + 1 + int(rng.integers(0, 3)))
    anchors = ContactAnchors(canvas.labels)
    for _ in range(adds):
        box = _add_object(canvas, rng)
        if box is not None:
            anchors.add(*box)
        th, tw = int(rng.integers(1, 16)), int(rng.integers(1, 16))
        obj = np.ones((th, tw), dtype=np.int64)
        runs = grown_runs(obj, (0, th - 1, 0, tw - 1), 0)
        u = rng.random(int(rng.integers(1, 12)))
        border = int(rng.integers(0, 2))
        kept = anchors.candidates(u, th, tw, border, lambda x, y: canvas.overlaps(x, y, runs))
        fresh = contact_candidates(canvas.labels.copy(), u, th, tw, border, lambda x, y: canvas.overlaps(x, y, runs))
        want = _candidates_by_filters(canvas.labels.copy(), u, th, tw, border, lambda x, y: canvas.overlaps(x, y, runs))
        for a, b, c in zip(kept, fresh, want):
            assert np.array_equal(a, c) and np.array_equal(b, c)


def test_kept_anchors_match_the_filter_anchors_on_a_dense_map():
    """The anchor set in raster order is the free pixels of the 3 x 3 max filter, and each
    anchor's cell is that filter's value (what contact_candidates read before they were kept)."""
    rng = np.random.default_rng(5)
    labels = _random_map(rng, 64, 80, 120, 500)
    a = ContactAnchors(labels)
    near = ndimage.maximum_filter(labels, size=3, mode="constant", cval=0)
    want = (near > 0) & (labels == 0)
    assert np.array_equal(a.free, want) and a.row_counts.tolist() == want.sum(1).tolist()
    ly, lx = np.nonzero(labels)
    cnt = np.bincount(labels[ly, lx], minlength=int(labels.max()) + 1)
    assert np.array_equal(a.cnt, cnt) and np.array_equal(a.sy, np.bincount(labels[ly, lx], ly, minlength=cnt.size))
