"""Deprecated: use :mod:`iaaa.synthesis.background`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.filters import blur_small, feather_radius, gaussian_blur
from iaaa.synthesis.background import BackgroundConfig, BackgroundFill, fill_background, remove_cells, METHODS

__all__ = ["blur_small", "feather_radius", "gaussian_blur", "BackgroundConfig", "BackgroundFill", "fill_background", "remove_cells", "METHODS"]
