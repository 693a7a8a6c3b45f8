"""iaaa.synthesis.image_groups: which images share an acquisition group (size, then clusters of
median cell diameter) and the halo width each group gets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.synthesis.image_groups import auto_group_keys, median_diameter, survey


def test_median_diameter_of_discs():
    areas = [math.pi * r * r for r in (3.0, 5.0, 8.0)]
    assert median_diameter(areas) == pytest.approx(10.0)
    assert median_diameter(np.array([math.pi * 16.0])) == pytest.approx(8.0)
    assert median_diameter([]) == 0.0


def test_sizes_and_magnifications_separate():
    sizes = [(256, 256)] * 5 + [(520, 696)] * 3
    diam = [10.0, 11.5, 12.0, 30.0, 31.0, 10.5, 11.0, 12.5]
    keys = auto_group_keys(sizes, diam)
    assert keys[:3] == [(256, 256, 10)] * 3
    assert keys[3:5] == [(256, 256, 30)] * 2
    assert keys[5:] == [(520, 696, 10)] * 3  # same cells, other size: another group
    # Single linkage: a run of steps below the ratio stays one group however far it drifts.
    chain = auto_group_keys([(64, 64)] * 4, [10.0, 15.0, 22.0, 33.0])
    assert len(set(chain)) == 1
    # An image without cells joins the cluster of the smallest diameter of its size, whose key
    # still names that cluster's smallest cell diameter (PasteCells matches samples by it).
    keys = auto_group_keys([(64, 64)] * 3, [0.0, 20.0, 50.0])
    assert keys == [(64, 64, 20), (64, 64, 20), (64, 64, 50)]
    assert auto_group_keys([(64, 64)] * 2, [0.0, 0.0]) == [(64, 64, 0)] * 2


@settings(max_examples=80, deadline=None)
@given(
    diam=st.lists(st.floats(4.0, 80.0), min_size=1, max_size=12),
    sizes=st.lists(st.sampled_from([(64, 64), (64, 80), (128, 128)]), min_size=12, max_size=12),
    ratio=st.floats(1.2, 2.5),
)
def test_auto_keys_split_exactly_at_gaps_above_the_ratio(diam, sizes, ratio):
    sizes = sizes[: len(diam)]
    keys = auto_group_keys(sizes, diam, ratio)
    for size in set(sizes):
        idx = sorted((i for i, s in enumerate(sizes) if s == size), key=lambda i: diam[i])
        assert all(keys[i][:2] == size for i in idx)
        for a, b in zip(idx, idx[1:]):
            # Same key unless the step between neighbours in diameter order exceeds the ratio.
            assert (keys[a] != keys[b]) == (diam[b] > ratio * diam[a])
        # A key names the smallest (rounded) diameter of its cluster.
        for i in idx:
            assert keys[i][2] == round(min(diam[j] for j in idx if keys[j] == keys[i]))


def test_auto_group_keys_refuses_bad_input():
    with pytest.raises(IaaaError, match="entries"):
        auto_group_keys([(8, 8)], [1.0, 2.0])
    with pytest.raises(IaaaError, match="ratio"):
        auto_group_keys([(8, 8)], [1.0], ratio=1.0)


@pytest.fixture(scope="module")
def two_settings():
    """Same size, two magnifications (cells ~2.5x apart), plus one image of another size."""
    from iaaa.datasets import simulate_cells

    small = simulate_cells(3, seed=3, size=(96, 96), cells=(10, 14), radius=(4.0, 5.0))
    large = simulate_cells(3, seed=4, size=(96, 96), cells=(4, 6), radius=(10.0, 12.0))
    other = simulate_cells(1, seed=5, size=(80, 112), cells=(10, 14), radius=(4.0, 5.0))
    return small + large + other


def test_survey_groups_by_size_and_diameter(two_settings):
    keys, halos = survey(two_settings, "auto", halo=2)
    assert len(set(keys[:3])) == 1 and len(set(keys[3:6])) == 1
    assert keys[0] != keys[3] and keys[0][:2] == keys[3][:2] == (96, 96)
    assert keys[6][:2] == (80, 112)
    # Simulated cells are irregular, so their equivalent diameters fall a little below 2 * radius.
    assert 6 <= keys[0][2] <= 11 and 16 <= keys[3][2] <= 25 and keys[3][2] > 1.6 * keys[0][2]
    assert halos == {k: 2 for k in keys}
    size_keys, _ = survey(two_settings, "size", halo=0)
    assert size_keys == [(96, 96)] * 6 + [(80, 112)]
    assert survey(two_settings, None, halo=1) == ([None] * 7, {None: 1})
    assert survey(two_settings, lambda s: s.name[-1] == "0", halo=0)[0][:2] == [True, False]
    with pytest.raises(IaaaError, match="group_by"):
        survey(two_settings, "diameter", halo=0)


def test_auto_halo_is_bounded_by_half_the_cell_diameter(two_settings):
    keys, halos = survey(two_settings, "auto", halo="auto")
    assert set(halos) == set(keys)
    for k, h in halos.items():
        assert isinstance(h, int) and 0 <= h <= round(k[2] / 2 + 1)
    # Images without cells or without background have no halo of their own: they take the median.
    blank = two_settings[0].image.new_zeros(two_settings[0].image.shape)
    from iaaa.structures import AnnotatedImage

    empty = AnnotatedImage(blank, torch.zeros(96, 96, dtype=torch.int64), name="empty")
    keys2, halos2 = survey([*two_settings[:3], empty], lambda s: s.name == "empty", halo="auto")
    assert halos2[True] == halos2[False] == survey(two_settings[:3], None, halo="auto")[1][None]


def test_survey_hands_over_the_distance_tables_within_its_budget(two_settings, monkeypatch):
    """With ``nearest=[]`` the survey keeps each measured image's nearest-cell table (the masks
    grown from it are the ones a fresh transform grows) until its memory budget is spent; a
    fit that reuses the tables makes the same pools as one that recomputes them."""
    import iaaa.synthesis.image_groups as groups
    from iaaa.synthesis import CellCompositor
    from iaaa.synthesis.halo import grow_masks

    nearest: list = []
    keys, halos = survey(two_settings, "auto", halo="auto", nearest=nearest)
    assert len(nearest) == len(two_settings) and all(t is not None for t in nearest)
    for s, k, t in zip(two_settings, keys, nearest):
        assert torch.equal(t.grow(halos[k]), grow_masks(s.labels, halos[k]))
    assert survey(two_settings, "auto", halo=2, nearest=nearest) and nearest == [None] * len(two_settings)
    reused = CellCompositor(seed=1).fit(two_settings, progress=False)
    monkeypatch.setattr(groups, "_NEAREST_BUDGET", 2 * nearest_bytes(two_settings[0]))
    survey(two_settings, "auto", halo="auto", nearest=nearest)
    assert [t is not None for t in nearest] == [True, True] + [False] * 5
    monkeypatch.setattr(groups, "_NEAREST_BUDGET", 0)
    fresh = CellCompositor(seed=1).fit(two_settings, progress=False)
    assert len(reused.objects) == len(fresh.objects)
    for a, b in zip(reused.objects, fresh.objects):
        assert torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels)
    assert all(torch.equal(a, b) for a, b in zip(reused.backgrounds, fresh.backgrounds))


def nearest_bytes(sample) -> int:
    return sample.labels.numel() * 3  # uint8 ring + uint16 label
