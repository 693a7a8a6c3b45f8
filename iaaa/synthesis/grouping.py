"""Mask-level grouping: which cells of a label map form one object.

Two cells are *connected* when their masks, each grown by ``touch`` pixels (a square, i.e.
Chebyshev growth), meet: overlap or share an edge or corner. Equivalently, the Chebyshev gap
between some pixel of one and some pixel of the other is at most ``2 * touch + 1``. Groups are the
connected components of that relation; a group of one cell is a single-cell object (SCO), a
larger one a multi-cell object (MCO). ``touch=0`` groups cells whose masks touch.

This replaces the paper's rule of merging *bounding boxes*, which on dense fields chains most of
the image into a few huge boxes although most cells touch no other cell.

How it is computed, without a per-pair test: every free pixel within Chebyshev distance
``touch`` of a cell takes the label of its nearest cell (:func:`~iaaa.synthesis.halo.grow_masks`
with ``metric="chessboard"``); label pairs that are 8-neighbours in that grown map (four shifted
views) are the edges of a graph whose connected components are the groups. The components are
exactly those of the pairwise rule: a grown pixel labelled ``X`` that lies within ``touch`` of
cell ``A`` is linked to ``A`` by a chessboard-straight chain of pixels all within ``touch`` of
``A`` (so all labelled), and neighbouring labels in the grown map always belong to pairwise
connected cells.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from iaaa.errors import IaaaError
from iaaa.synthesis.halo import grow_masks

__all__ = ["label_adjacency", "group_cells"]


def label_adjacency(labels: torch.Tensor) -> np.ndarray:
    """Distinct pairs ``(a, b)``, ``a < b``, of non-zero labels that are 8-neighbours somewhere in
    ``labels`` ``(H, W)``: an ``(E, 2)`` int64 array, sorted."""
    a = labels.detach().cpu().numpy()
    pairs = []
    # Right, down, down-right and down-left neighbours cover every 8-neighbour pair once.
    for p, q in (
        (a[:, :-1], a[:, 1:]),
        (a[:-1, :], a[1:, :]),
        (a[:-1, :-1], a[1:, 1:]),
        (a[:-1, 1:], a[1:, :-1]),
    ):
        m = (p != q) & (p > 0) & (q > 0)
        if m.any():
            pairs.append(np.stack([np.minimum(p[m], q[m]), np.maximum(p[m], q[m])], 1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


def group_cells(labels: torch.Tensor, touch: int = 1, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Group the cells of ``labels`` ``(H, W)`` by mask contact (see the module docs).

    Args:
        labels: instance label map, 0 background.
        touch: growth in pixels before testing contact (``>= 0``).
        ids: the cells to group (default every non-zero label). Other labels are ignored: they
            neither join nor link groups (e.g. debris below a minimum area).

    Returns:
        ``(ids, group)``: the sorted cell ids ``(N,)`` and each cell's group index ``(N,)``
        int64 in ``0 .. M-1``, groups numbered in order of their lowest cell id.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 2 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise IaaaError(f"labels: expected an (H, W) integer tensor, got {getattr(labels, 'shape', type(labels))}")
    if int(touch) != touch or touch < 0:
        raise IaaaError(f"touch must be an integer >= 0, got {touch}")
    lab = labels.detach().cpu()
    all_ids = torch.unique(lab)
    all_ids = all_ids[all_ids > 0]
    if ids is None:
        cells = all_ids
    else:
        cells = torch.unique(torch.as_tensor(ids).detach().cpu().to(torch.int64))
        missing = cells[~torch.isin(cells, all_ids)]
        if missing.numel():
            raise IaaaError(f"ids: {missing.tolist()[:10]} are not labels of the map")
        lab = torch.where(torch.isin(lab, cells), lab, torch.zeros_like(lab))
    n = cells.numel()
    if n == 0:
        return cells.to(labels.device), torch.zeros(0, dtype=torch.int64, device=labels.device)
    grown = grow_masks(lab.to(torch.int64), int(touch), metric="chessboard")
    edges = label_adjacency(grown)
    cells_np = cells.numpy()
    i = np.searchsorted(cells_np, edges[:, 0])
    j = np.searchsorted(cells_np, edges[:, 1])
    _, comp = connected_components(coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)), directed=False)
    # Renumber groups by their lowest member (cells are sorted, so by first appearance).
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = torch.from_numpy(rank[comp].astype(np.int64))
    return cells.to(labels.device), group.to(labels.device)
