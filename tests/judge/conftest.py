"""Fixtures shared by the judge's tests."""

import pytest


@pytest.fixture(scope="module")
def tiny(one_thread):
    from iaaa.datasets import simulate_cells

    return simulate_cells(4, seed=1, size=(64, 72), cells=(4, 8)), simulate_cells(2, seed=2, size=(56, 64), cells=(4, 8))
