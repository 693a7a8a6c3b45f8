"""What ``CellCompositor.fit`` computes for one image, and running it for many images in worker
processes.

Apart from grouping, a fit is image by image: each image's halo width first (the survey,
:func:`~iaaa.synthesis.image_groups.halo_width`), then, with its group's halo fixed, its cleaned
background, objects, contacts, levels and pooled background (:func:`fit_image`). Both are pure
functions of the image and of values fixed beforehand (the config, the halo, the context, the
seed: an image's generator is seeded by its index), so an image's results are the same bits in
the fitting process or in a worker, and :func:`map_images` can spread them over
``torch.utils.data.DataLoader`` workers: PyTorch's own worker machinery (one torch thread each,
tensors handed back through shared memory, results in input order), as ``iaaa synth`` uses for
writing images.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage
from iaaa.synthesis.background import remove_cells
from iaaa.synthesis.config import CompositorConfig
from iaaa.synthesis.contacts import ContactStats, measure_contacts
from iaaa.synthesis.halo import NearestCells, grow_masks
from iaaa.synthesis.layout import layout_grid
from iaaa.synthesis.levels import intensity_anchors, level_map
from iaaa.synthesis.mirror import tile
from iaaa.synthesis.objects import extract
from iaaa.synthesis.pools import PooledBackground, level_summary, real_cells
from iaaa.threads import torch_threads

__all__ = ["FittedImage", "fit_image", "map_images"]


@dataclass
class FittedImage:
    """One image's contribution to the pools (what :class:`~iaaa.synthesis.pools.PoolBuilder`
    records for it, in image order)."""

    objects: list
    """Its :class:`~iaaa.structures.CellObject` s."""
    cells: int
    border: int
    """Objects dropped for touching the frame (0 with ``keep_border``)."""
    fragments: int
    contacts: ContactStats
    anchors: np.ndarray | None
    cleaned: torch.Tensor | None
    """The image with its cells removed (the image itself when it has no background pixel):
    what the border fallback cuts objects from. ``None`` where the fallback cannot run: the image
    gave objects (the fallback runs only when no image did) or ``keep_border`` is set."""
    background: PooledBackground | None
    """The pooled background (``None``: no background pixel)."""
    level_summary: np.ndarray | None = None
    """:func:`~iaaa.synthesis.pools.level_summary` of the pooled background's level at its
    background pixels, for ``add_level`` (``None``: no background pixel)."""


def fit_image(
    sample: AnnotatedImage, index: int, seed: int, config: CompositorConfig, key: Any, halo: int, rim: int, context: int,
    nearest: NearestCells | None = None,
) -> FittedImage:
    """Everything ``fit`` takes from image ``index`` of the fitted list, with its group ``key``
    and the group's ``halo`` (rim, context) fixed; ``nearest``: the survey's distance table of
    the image, which saves growing its masks by a new distance transform."""
    cfg = config
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    s = sample
    # Mask removal and mask grouping both need the labels grown by the halo: the survey's
    # distance transform serves both (a fresh one where it was not kept).
    by_mask = cfg.background.background_method == "mask"
    grown = None
    if by_mask and cfg.objects.grouping == "mask":
        grown = nearest.grow(halo).to(s.labels.device) if nearest is not None else grow_masks(s.labels, halo)
    try:
        bg = remove_cells(s.image, s.labels, cfg.background, halo=halo, grown=grown, generator=g).image
    except IaaaError:  # no background pixel at all: the image still gives objects
        bg = None
    cleaned = bg if bg is not None else s.image
    objs, groups = extract(s, cfg.objects, cleaned, halo=halo, context=context, grown=grown)
    anchors = intensity_anchors(s.image, s.labels)
    cells = int(groups.ids.numel())
    border = 0 if cfg.objects.keep_border else int(groups.border.sum())
    contacts = measure_contacts(s.labels, cfg.placement.contact_reach)
    # A full-size image less to send back from a worker and to hold until fit ends.
    keep_cleaned = not objs and not cfg.objects.keep_border
    out = FittedImage(objs, cells, border, int(groups.fragments.numel()), contacts, anchors, cleaned if keep_cleaned else None, None)
    # A real image cannot be mirror-tiled (its cells would repeat): one smaller than the output
    # keeps its cleaned background instead. A real image kept whole needs no cleaned background,
    # so a fully tiled field (every pixel a cell) still takes pastes, on top of its cells.
    onto_real = cfg.onto == "image" and (cfg.size is None or (cfg.size[0] <= s.size[0] and cfg.size[1] <= s.size[1]))
    if bg is not None or onto_real:
        real = None
        if onto_real:
            bg, real = s.image, real_cells(s, cfg.size)
        bg = tile(bg, cfg.size)
        # Corner scores read a smoothed background; float16 halves the pool's memory and is
        # ample to rank candidates.
        level = level_map(bg, cfg.placement.match_sigma).astype(np.float16)
        out.level_summary = level_summary(level, tile((s.labels == 0)[None], cfg.size)[0].cpu().numpy())
        grid = layout_grid(tile((s.labels > 0).to(torch.float32)[None], cfg.size)[0], cfg.layout.layout_sigma) if cfg.layout.layout == "source" else None
        out.background = PooledBackground(bg, level, s.name, key, cells, float(s.size[0] * s.size[1]), grid, real, anchors)
    return out


class _ValuePickler(pickle.Pickler):
    """Pickles plain CPU tensors by value, as their NumPy arrays (other objects as usual).

    A DataLoader worker's queue would hand every tensor over through shared memory, one file
    descriptor per storage passed by a socket handshake: about 0.25 ms each on both sides, and
    one fitted 1024 px image holds ~130 tensors (its objects' crops). That made the main
    process's receiving, not the workers' fitting, the part of ``fit(workers=...)`` that does
    not parallelise (34 ms of its CPU per image); by value the result crosses as one buffer
    (18 ms, most of it the pipe), and the pools it builds hold no shared memory (a container's
    small ``/dev/shm`` cannot run out). Values, dtypes and shapes are kept; a view arrives as a
    copy of its own elements."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is torch.Tensor and obj.device.type == "cpu" and obj.layout == torch.strided and not obj.requires_grad:
            try:
                return torch.from_numpy, (obj.numpy(),)
            except (TypeError, RuntimeError):  # a dtype NumPy lacks (bfloat16, ...): the usual way
                pass
        return NotImplemented


def _by_value(obj: Any) -> bytes:
    buf = io.BytesIO()
    _ValuePickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


class _Calls(torch.utils.data.Dataset):
    """``fn(*args[i])`` as item ``i``, pickled by value (:class:`_ValuePickler`): what the
    DataLoader workers compute and send."""

    def __init__(self, fn: Callable[..., Any], args: Sequence[tuple]) -> None:
        self.fn, self.args = fn, list(args)

    def __len__(self) -> int:
        return len(self.args)

    def __getitem__(self, i: int) -> bytes:
        with torch_threads(1):
            return _by_value(self.fn(*self.args[i]))


def _identity(x: Any) -> Any:
    return x


def map_images(fn: Callable[..., Any], args: Sequence[tuple], workers: int = 0, progress: Callable[[Any], Any] | None = None) -> list:
    """``[fn(*a) for a in args]``, in order, computed in ``workers`` DataLoader worker
    processes (``0``: in this process). ``progress``: called with each result as it arrives.

    Worker processes start the platform's way (fork on Linux; spawn on macOS and Windows,
    where ``fn`` and ``args`` are pickled and the calling script needs the usual
    ``if __name__ == "__main__":`` guard), each with one torch thread. Results come back by
    value (:class:`_ValuePickler`), not through shared memory.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise IaaaError(f"workers: expected an integer >= 0, got {workers!r}")
    out = []
    if workers == 0 or len(args) <= 1:
        for a in args:
            out.append(fn(*a))
            if progress is not None:
                progress(out[-1])
        return out
    loader = torch.utils.data.DataLoader(_Calls(fn, args), batch_size=None, num_workers=min(workers, len(args)), collate_fn=_identity)
    for packed in loader:
        r = pickle.loads(packed)
        out.append(r)
        if progress is not None:
            progress(r)
    return out
