"""Deprecated: use :mod:`iaaa.synthesis.compositor`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.synthesis.compositor import CellCompositor
from iaaa.synthesis.pools import CompositorStats, PooledObject, COUNTS

__all__ = ["CellCompositor", "CompositorStats", "PooledObject", "COUNTS"]
