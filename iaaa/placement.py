"""Deprecated: use :mod:`iaaa.synthesis.placement`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.synthesis.canvas import Canvas
from iaaa.synthesis.placement import PlacementResult, PlacementConfig, place_objects, level_map, FEATHERS, COLLISIONS

__all__ = ["PlacementResult", "PlacementConfig", "Canvas", "place_objects", "level_map", "FEATHERS", "COLLISIONS"]
