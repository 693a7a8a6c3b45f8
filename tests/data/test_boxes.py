"""iaaa.boxes against brute-force references and torchvision: merging connected boxes, the union
of grown boxes as a mask, the tight box of a mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import masks_to_boxes

from iaaa.boxes import boxes_to_mask, merge_boxes, tight_box
from iaaa.errors import IaaaError


def _connected(a, b, margin: int) -> bool:
    return a[0] - margin <= b[2] and b[0] - margin <= a[2] and a[1] - margin <= b[3] and b[1] - margin <= a[3]


def _merge_reference(boxes: list[list[int]], margin: int) -> set[tuple[int, int, int, int]]:
    """Merge any two connected boxes into their union until none are: the definition, slowly."""
    cur = [tuple(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        for i in range(len(cur)):
            for j in range(i + 1, len(cur)):
                if _connected(cur[i], cur[j], margin):
                    a, b = cur[i], cur[j]
                    cur[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del cur[j]
                    changed = True
                    break
            if changed:
                break
    return set(cur)


_box = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 12), st.integers(0, 12)).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=80, deadline=None)
@given(boxes=st.lists(_box, min_size=1, max_size=25), margin=st.integers(0, 3))
def test_merge_boxes_matches_the_definition(boxes, margin):
    merged, group = merge_boxes(torch.tensor(boxes), margin)
    assert merged.dtype == torch.int64 and group.shape == (len(boxes),)
    got = [tuple(b) for b in merged.tolist()]
    assert set(got) == _merge_reference(boxes, margin) and len(got) == len(set(got))
    for i, b in enumerate(boxes):
        m = got[int(group[i])]
        assert m[0] <= b[0] and m[1] <= b[1] and b[2] <= m[2] and b[3] <= m[3]
    # Ordered by lowest member; each merged box is exactly the union of its members.
    firsts = [int(torch.nonzero(group == k)[0]) for k in range(len(got))]
    assert firsts == sorted(firsts)
    t = torch.tensor(boxes)
    for k, m in enumerate(got):
        members = t[group == k]
        assert m == (int(members[:, 0].min()), int(members[:, 1].min()), int(members[:, 2].max()), int(members[:, 3].max()))


def test_merge_boxes_margin_and_many_boxes():
    # Gap of one pixel between x=2 and x=4: touching-only (margin 1) keeps them apart, margin 2 joins.
    two = torch.tensor([[0, 0, 2, 2], [4, 0, 6, 2]])
    assert merge_boxes(two, 1)[0].shape[0] == 2
    assert merge_boxes(two, 2)[0].tolist() == [[0, 0, 6, 2]]
    # More boxes than one row block (1024): a grid of separate boxes stays separate, a chain merges.
    ij = torch.cartesian_prod(torch.arange(40), torch.arange(30))
    grid = torch.cat([ij * 4, ij * 4 + 1], 1)[:, [1, 0, 3, 2]]
    merged, group = merge_boxes(grid, 1)
    assert merged.shape[0] == 1200 and torch.equal(group, torch.arange(1200))
    chain = torch.stack([torch.arange(1100) * 2, torch.zeros(1100, dtype=torch.int64), torch.arange(1100) * 2 + 1, torch.ones(1100, dtype=torch.int64)], 1)
    merged, group = merge_boxes(chain, 1)
    assert merged.tolist() == [[0, 0, 2199, 1]] and bool((group == 0).all())


def test_merge_boxes_refuses_bad_input():
    with pytest.raises(IaaaError, match="boxes"):
        merge_boxes(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(IaaaError, match="margin"):
        merge_boxes(torch.zeros(1, 4, dtype=torch.int64), -1)


@settings(max_examples=60, deadline=None)
@given(boxes=st.lists(st.tuples(st.integers(-5, 30), st.integers(-5, 30), st.integers(0, 10), st.integers(0, 10)), max_size=12), grow=st.integers(0, 3))
def test_boxes_to_mask_is_the_union_of_grown_boxes(boxes, grow):
    h, w = 24, 28
    ref = np.zeros((h, w), dtype=bool)
    for x0, y0, dw, dh in boxes:
        # Inclusive maxima; clipping to the frame is what slicing does.
        ref[max(y0 - grow, 0) : max(y0 + dh + grow + 1, 0), max(x0 - grow, 0) : max(x0 + dw + grow + 1, 0)] = True
    t = torch.tensor([[x0, y0, x0 + dw, y0 + dh] for x0, y0, dw, dh in boxes], dtype=torch.int64).reshape(-1, 4)
    got = boxes_to_mask(t, (h, w), grow)
    assert got.dtype == torch.bool and got.shape == (h, w)
    assert np.array_equal(got.numpy(), ref)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), density=st.floats(0.0, 0.2))
def test_tight_box_equals_torchvision_masks_to_boxes(seed, density):
    mask = np.random.default_rng(seed).random((13, 17)) < density
    got = tight_box(mask)
    if not mask.any():
        assert got is None
        return
    x0, y0, x1, y1 = (int(v) for v in masks_to_boxes(torch.from_numpy(mask)[None])[0])
    assert got == (y0, y1, x0, x1)
