"""Deprecated: use :mod:`iaaa.synthesis.objects`. This module only re-exports its public names and will be removed in a
later release."""

from __future__ import annotations

from iaaa.boxes import merge_boxes
from iaaa.structures import instance_areas, instance_boxes
from iaaa.synthesis.objects import ObjectConfig, ObjectGroups, group_instances, extract_objects

__all__ = ["instance_areas", "instance_boxes", "merge_boxes", "ObjectConfig", "ObjectGroups", "group_instances", "extract_objects"]
