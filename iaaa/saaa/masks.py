"""Instance label maps as two continuous channels a diffusion model can learn, and back.

A binary mask cannot tell two touching cells apart, so (as NuDiff, MICCAI 2023) a label map is
encoded as two channels in ``[-1, 1]``:

* **foreground**: ``+1`` inside any cell, ``-1`` on background;
* **distance**: each cell's Euclidean distance to its own boundary, divided by that cell's
  maximum (so every cell peaks at ``+1`` at its centre and falls to ``-1`` at its edge and on
  background). Pixels where two cells touch count as boundary, so touching cells get separate
  peaks.

Decoding thresholds the foreground, takes the connected regions of high distance as one marker
per cell and grows the markers over the foreground from high to low distance (a watershed
flood done with vectorised max-pooling, level by level), then gives any foreground region no
marker reached an id of its own, drops instances smaller than ``min_area`` and renumbers
``1..N``. Every instance is one 8-connected region by construction.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from iaaa.errors import IaaaError
from iaaa.structures import instance_areas, relabel_sequential

__all__ = ["MASK_CHANNELS", "labels_to_channels", "channels_to_labels", "grow_markers", "remove_small_instances"]

#: Channels of the encoding: foreground, normalised distance to the cell's boundary.
MASK_CHANNELS = 2


def _touching(labels: torch.Tensor) -> torch.Tensor:
    """Cell pixels with a 4-neighbour of a different non-zero label ``(B, H, W)`` bool."""
    lab = labels.unsqueeze(1).float()
    big = float(labels.max()) + 1.0 if labels.numel() else 1.0
    # Background counts as "no neighbour" for both the max and the min of the 3x3 cross.
    hi = F.max_pool2d(F.pad(lab, (1, 1, 1, 1)), 3, 1)
    lo = -F.max_pool2d(F.pad(-torch.where(lab > 0, lab, torch.full_like(lab, big)), (1, 1, 1, 1), value=-big), 3, 1)
    return ((hi != lab) | (lo != lab)).squeeze(1) & (labels > 0)


def labels_to_channels(labels: torch.Tensor) -> torch.Tensor:
    """Encode label maps ``(H, W)`` or ``(B, H, W)`` as float32 ``([B,] 2, H, W)`` in ``[-1, 1]``
    (foreground, per-cell normalised distance to the boundary; see the module docs)."""
    single = labels.ndim == 2
    lab = (labels[None] if single else labels).to(torch.int64).cpu()
    sep = (lab > 0) & ~_touching(lab)
    out = torch.empty((lab.shape[0], MASK_CHANNELS, *lab.shape[-2:]), dtype=torch.float32)
    for b in range(lab.shape[0]):  # one scipy transform per image; no per-pixel work in Python
        dist = ndimage.distance_transform_edt(sep[b].numpy()).astype(np.float32)
        lb = lab[b].numpy()
        ids = np.unique(lb[lb > 0])
        peak = np.zeros(int(lb.max()) + 1, dtype=np.float32)
        if ids.size:
            peak[ids] = np.asarray(ndimage.maximum(dist, lb, ids), dtype=np.float32)
        norm = np.where(lb > 0, dist / np.maximum(peak[lb], 1.0), 0.0)
        out[b, 0] = torch.from_numpy((lb > 0).astype(np.float32) * 2 - 1)
        out[b, 1] = torch.from_numpy(norm.astype(np.float32) * 2 - 1)
    out = out.to(labels.device)
    return out[0] if single else out


def grow_markers(markers: torch.Tensor, elevation: torch.Tensor, region: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """Flood ``markers`` ``(B, H, W)`` int64 (0 = unlabelled) over ``region`` (bool, same shape),
    pixels of high ``elevation`` first: at each of ``levels`` descending thresholds the labels
    spread by 8-neighbour max-pooling over the region pixels at or above the threshold until
    they stop changing. Where two labels reach a pixel in the same pass, the larger id wins.
    Pixels of the region that no marker can reach stay 0."""
    lab = torch.where(region, markers, torch.zeros_like(markers)).unsqueeze(1).float()
    elev = elevation.unsqueeze(1)
    reg = region.unsqueeze(1)
    hi = float(elevation.max()) if elevation.numel() else 0.0
    lo = float(elevation[region].min()) if bool(region.any()) else 0.0
    thresholds = torch.linspace(hi, lo, max(int(levels), 1) + 1)[1:].tolist()
    for t in thresholds:
        open_ = reg & (elev >= t)
        while True:
            grown = F.max_pool2d(F.pad(lab, (1, 1, 1, 1)), 3, 1)
            new = torch.where(open_ & (lab == 0) & (grown > 0), grown, lab)
            if torch.equal(new, lab):
                break
            lab = new
    return lab.squeeze(1).to(torch.int64)


def remove_small_instances(labels: torch.Tensor, min_area: int) -> torch.Tensor:
    """Zero every instance of fewer than ``min_area`` pixels and renumber the rest ``1..N`` in
    their original order."""
    ids, areas = instance_areas(labels)
    small = ids[areas < int(min_area)]
    if small.numel():
        labels = torch.where(torch.isin(labels, small), torch.zeros_like(labels), labels)
    return relabel_sequential(labels)[0]


def channels_to_labels(channels: torch.Tensor, min_area: int = 8, fg_threshold: float = 0.0, marker_threshold: float = 0.5, levels: int = 8) -> torch.Tensor:
    """Decode ``([B,] 2, H, W)`` channels into int64 label maps ``([B,] H, W)`` with ids ``1..N``.

    ``fg_threshold`` cuts the foreground channel; ``marker_threshold`` (on the distance rescaled
    to ``[0, 1]``) decides where cell centres are; instances below ``min_area`` pixels are
    removed (see the module docs)."""
    single = channels.ndim == 3
    ch = (channels[None] if single else channels).float().cpu()
    if ch.ndim != 4 or ch.shape[1] != MASK_CHANNELS:
        raise IaaaError(f"channels: expected ([B,] {MASK_CHANNELS}, H, W), got {tuple(channels.shape)}")
    fg = ch[:, 0] > fg_threshold
    dist = ((ch[:, 1] + 1) / 2).clamp(0, 1)
    seeds = (fg & (dist > marker_threshold)).numpy()
    markers = torch.zeros(fg.shape, dtype=torch.int64)
    eight = np.ones((3, 3), dtype=bool)
    for b in range(ch.shape[0]):  # connected components per image: scipy, vectorised inside
        markers[b] = torch.from_numpy(ndimage.label(seeds[b], structure=eight)[0].astype(np.int64))
    labels = grow_markers(markers, dist, fg, levels)
    out = torch.empty_like(labels)
    for b in range(ch.shape[0]):
        lab = labels[b]
        # Foreground no marker reached (a cell whose distance never passes the threshold).
        rest, n_rest = ndimage.label((fg[b] & (lab == 0)).numpy(), structure=eight)
        if n_rest:
            base = int(lab.max())
            rest_t = torch.from_numpy(rest.astype(np.int64))
            lab = torch.where(rest_t > 0, rest_t + base, lab)
        out[b] = remove_small_instances(lab, min_area)
    out = out.to(channels.device)
    return out[0] if single else out
