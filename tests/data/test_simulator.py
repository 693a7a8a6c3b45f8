"""The built-in simulator: determinism, formats, and that it makes SCOs and MCOs."""

from __future__ import annotations

import pytest
import torch

from iaaa.datasets import simulate_cells


def test_same_seed_same_data_and_prefix_stable():
    a = simulate_cells(3, seed=5, size=(64, 80))
    b = simulate_cells(5, seed=5, size=(64, 80))
    for x, y in zip(a, b):
        assert torch.equal(x.image, y.image) and torch.equal(x.labels, y.labels)
    c = simulate_cells(1, seed=6, size=(64, 80))
    assert not torch.equal(a[0].image, c[0].image)


@pytest.mark.parametrize("mode,channels", [("fluorescence", 1), ("brightfield", 3)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.float32])
def test_modes_and_dtypes(mode, channels, dtype):
    (s,) = simulate_cells(1, seed=0, size=(96, 96), mode=mode, dtype=dtype)
    assert s.image.shape == (channels, 96, 96) and s.image.dtype == dtype
    assert s.num_instances >= 5
    assert torch.equal(s.ids, torch.arange(1, s.num_instances + 1))
    # cells differ from background in the expected direction
    x = s.image.float().mean(0)
    inside, outside = x[s.labels > 0].mean(), x[s.labels == 0].mean()
    assert (inside > outside) if mode == "fluorescence" else (inside < outside)
    if dtype == torch.uint16:
        assert int(s.image.to(torch.int32).max()) > 255  # the full 16-bit range is used


def test_touching_clusters_and_isolated_cells_occur():
    sims = simulate_cells(4, seed=0, size=(128, 128))
    touching = isolated = 0
    for s in sims:
        lab = s.labels
        # instances that share a 4-neighbour edge with another instance
        pairs = torch.cat([torch.stack([lab[:, 1:], lab[:, :-1]], -1).reshape(-1, 2), torch.stack([lab[1:], lab[:-1]], -1).reshape(-1, 2)])
        pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & (pairs > 0).all(1)]
        t = set(pairs.flatten().tolist())
        touching += len(t)
        isolated += s.num_instances - len(t)
    assert touching > 0 and isolated > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        simulate_cells(1, mode="phase")
    with pytest.raises(ValueError, match="dtype"):
        simulate_cells(1, dtype=torch.int8)
    with pytest.raises(ValueError, match="size"):
        simulate_cells(1, size=(8, 8))
