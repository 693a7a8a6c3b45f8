"""Built-in sample data: a seeded cell-image simulator."""

from iaaa.datasets.simulator import simulate_cells, simulate_image

__all__ = ["simulate_cells", "simulate_image"]
