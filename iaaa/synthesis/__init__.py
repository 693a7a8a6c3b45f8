"""Synthesis (IAAA, paper sections 2.2-2.4): one module per stage, each with a small validated
config, gathered in one :class:`CompositorConfig` and composed by :class:`CellCompositor`.

* :mod:`~iaaa.synthesis.objects` — cut SCOs / MCOs out of annotated images (:class:`ObjectConfig`);
* :mod:`~iaaa.synthesis.background` — remove the cells, fill the holes (:class:`BackgroundConfig`);
* :mod:`~iaaa.synthesis.layout` — where candidate positions come from (:class:`LayoutConfig`);
* :mod:`~iaaa.synthesis.canvas` — the image being built and its occupancy bookkeeping (:class:`Canvas`);
* :mod:`~iaaa.synthesis.footprints` — what placement knows of an object before it looks at
  the canvas: cut to its reach, its alpha and corner descriptor (:func:`footprints`);
* :mod:`~iaaa.synthesis.placement` — corner-matched, feathered placement on a canvas
  (:class:`PlacementConfig`, :func:`place_objects` -> :class:`PlacementResult`);
* :mod:`~iaaa.synthesis.into_image` — placing into an image that keeps its cells: free space,
  else on top (:func:`place_into_image`, shared by ``onto="image"`` and :class:`PasteCells`);
* :mod:`~iaaa.synthesis.contacts` — how cells touch in the data (:func:`measure_contacts`) and
  positions against a cell for contact-aware placement;
* :mod:`~iaaa.synthesis.pools` — what ``fit`` records;
* :mod:`~iaaa.synthesis.draws` — how many cells and which objects a synthetic image draws
  from the pools (:class:`CountConfig`);
* :mod:`~iaaa.synthesis.object_policy` — per-object augmentation policies
  (:mod:`~iaaa.synthesis.kornia_policy`: a Kornia pipeline as one);
* :mod:`~iaaa.synthesis.object_warp` — how one pooled object is resampled (the default policy's
  affine warp, and the compositor's paths over the window placement reads);
* :mod:`~iaaa.synthesis.halo` — how far a cell's halo / blurred rim reaches; growing masks;
* :mod:`~iaaa.synthesis.inpaint` — mask-level cell removal: membrane level plus real texture;
* :mod:`~iaaa.synthesis.mirror` — reading past the frame by reflection (:func:`tile`, :func:`reflect_index`);
* :mod:`~iaaa.synthesis.image_groups` — which images of mixed data belong together;
* :mod:`~iaaa.synthesis.fitting` — what `fit` computes per image, and fitting images in worker processes;
* :mod:`~iaaa.synthesis.config` — :class:`CompositorConfig`: the stage configs and the choices
  that span stages, flat ``KEY=VALUE`` options, JSON round trip, the ``paper()`` preset;
* :mod:`~iaaa.synthesis.compositor` — :class:`CellCompositor`;
* :mod:`~iaaa.synthesis.paste` — :class:`PasteCells`: the online transform (a fitted
  compositor's cells pasted into a real sample; what and where: :class:`PasteConfig`).

One public function per stage: :func:`extract_objects`, :func:`remove_cells`,
:func:`place_objects`, each taking its stage config.

Names are imported lazily, so importing one stage does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "CellCompositor": "compositor",
    "CompositorConfig": "config",
    "ObjectConfig": "objects", "ObjectGroups": "objects", "group_instances": "objects", "extract_objects": "objects",
    "group_cells": "objects", "label_adjacency": "objects",
    "HaloProfile": "halo", "halo_profile": "halo", "measure_halo": "halo", "grow_masks": "halo", "dilate_disk": "halo",
    "Inpainting": "inpaint", "inpaint": "inpaint", "background_level": "texture", "remove_cells_by_mask": "inpaint",
    "auto_group_keys": "image_groups", "survey": "image_groups", "halo_width": "image_groups", "nearest_plan": "image_groups",
    "FittedImage": "fitting", "fit_image": "fitting", "map_images": "fitting",
    "BackgroundConfig": "background", "BackgroundFill": "background", "remove_cells": "background",
    "reflect_index": "mirror", "tile": "mirror",
    "LayoutConfig": "layout", "layout_grid": "layout", "layout_density": "layout", "candidate_positions": "layout",
    "PlacementConfig": "placement", "PlacementResult": "placement", "PastedWindows": "placement", "Canvas": "canvas", "occupancy_table": "canvas",
    "place_objects": "placement", "place_into_image": "into_image", "level_map": "levels", "Footprints": "footprints", "footprints": "footprints",
    "ContactStats": "contacts", "measure_contacts": "contacts",
    "CountConfig": "draws", "CompositorStats": "pools", "PooledObject": "pools", "PooledBackground": "pools", "Pools": "pools",
    "GroupPool": "pools", "PoolBuilder": "pools", "draw_count": "draws", "choose_objects": "draws", "count_cap": "draws", "CountBasis": "draws", "RealCells": "pools",
    "ObjectAugment": "object_policy", "RandomScale": "object_policy", "Identity": "object_policy", "Sequential": "object_policy",
    "as_object_policy": "object_policy",
    "KorniaPolicy": "kornia_policy",
    "PasteCells": "paste", "PasteConfig": "paste", "PasteResult": "paste", "paste_cells": "paste", "match_group": "paste",
    "pick_objects": "draws",
    "objects_for_search": "search_objects",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iaaa.synthesis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"iaaa.synthesis.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
