"""Deprecated: use :mod:`iaaa.synthesis.layout`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.synthesis.layout import LAYOUTS, STEP, LayoutConfig, layout_grid, layout_density, candidate_positions

__all__ = ["LAYOUTS", "STEP", "LayoutConfig", "layout_grid", "layout_density", "candidate_positions"]
