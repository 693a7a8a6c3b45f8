"""Cell objects for the policy search and the WAE, cut from annotated images.

Lives in synthesis because cutting objects is a synthesis stage (:mod:`~iaaa.synthesis.objects`);
the policy package only receives the objects, so it never imports synthesis.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.structures import CellObject
from iaaa.synthesis.objects import ObjectConfig, extract_objects

__all__ = ["KINDS", "objects_for_search"]

KINDS = ("all", "sco", "mco")


def objects_for_search(samples: Sequence[Any], kind: str = "all", max_objects: int | None = 300, seed: int = 0, **extract: Any) -> list[CellObject]:
    """Cut cell objects out of ``samples`` with :func:`iaaa.synthesis.objects.extract_objects` and keep
    those of ``kind`` (``"all"``, ``"sco"`` or ``"mco"``), at most ``max_objects`` of them,
    drawn by a seeded permutation so the subset does not depend on file order alone."""
    if kind not in KINDS:
        raise IaaaError(f"kind must be one of {KINDS}, got {kind!r}")
    objs = extract_objects(samples, ObjectConfig(**{"grouping": "box", **extract}))  # the paper's merged-box objects
    if kind != "all":
        objs = [o for o in objs if o.kind == kind]
    if max_objects is not None and len(objs) > max_objects:
        perm = torch.randperm(len(objs), generator=torch.Generator().manual_seed(int(seed)))[:max_objects]
        objs = [objs[i] for i in sorted(perm.tolist())]
    return objs
