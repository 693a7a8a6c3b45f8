"""Deprecated: use :mod:`iaaa.synthesis.pools`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.synthesis.pools import CompositorStats, PooledObject

__all__ = ["CompositorStats", "PooledObject"]
