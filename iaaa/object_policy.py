"""Deprecated: use :mod:`iaaa.synthesis.object_policy`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.synthesis.object_policy import ObjectPolicy, ObjectAugment, RandomScale, Identity, Sequential, as_object_policy

__all__ = ["ObjectPolicy", "ObjectAugment", "RandomScale", "Identity", "Sequential", "as_object_policy"]
