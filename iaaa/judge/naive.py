"""The naive baseline the judge compares synthesis with: hard-edged copy-paste of real cells.

As in Simple Copy-Paste (Ghiasi et al., 2021): cells cut by their masks from a random
training image are pasted with hard edges at random positions onto another random training
image (its own cells kept), occluding what lies under them; the label map is updated exactly
(occluded pixels change owner, fully covered cells vanish) and renumbered ``1..N``. No
blending, no location search, no background cleaning.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage, as_annotated, labels_to_boxes, relabel_sequential

__all__ = ["NaivePaste"]


class NaivePaste:
    """Hard copy-paste sampler (see module docs).

    Args:
        keep: probability that each cell of the source image is pasted (at least one is).
        flip: also flip each pasted cell horizontally / vertically at random.
    """

    def __init__(self, keep: float = 0.5, flip: bool = True) -> None:
        if not 0 < keep <= 1:
            raise IaaaError(f"keep: must be in (0, 1], got {keep}")
        self.keep, self.flip = float(keep), bool(flip)
        self.samples: list[AnnotatedImage] = []

    def fit(self, samples: Iterable[Any]) -> "NaivePaste":
        """Remember the training images (each needs at least one cell to be a source)."""
        self.samples = [as_annotated(s) for s in samples]
        if not any(s.num_instances for s in self.samples):
            raise IaaaError("NaivePaste.fit: no image holds a cell")
        channels = {s.image.shape[0] for s in self.samples}
        if len(channels) > 1 or len({s.image.dtype for s in self.samples}) > 1:
            raise IaaaError(f"NaivePaste.fit: images mix channel counts {sorted(channels)} or dtypes; convert them first")
        return self

    def sample(self, generator: torch.Generator) -> AnnotatedImage:
        """One image: a random training image with cells of a random training image pasted on it."""
        if not self.samples:
            raise IaaaError("NaivePaste: call fit() first")
        g = generator
        n = len(self.samples)
        canvas = self.samples[int(torch.randint(n, (1,), generator=g))]
        sources = [s for s in self.samples if s.num_instances]
        source = sources[int(torch.randint(len(sources), (1,), generator=g))]
        image, labels = canvas.image.clone(), canvas.labels.clone()
        H, W = labels.shape
        ids = source.ids
        boxes = labels_to_boxes(source.labels, ids).long()
        chosen = torch.rand(ids.numel(), generator=g) < self.keep
        chosen[int(torch.randint(ids.numel(), (1,), generator=g))] = True
        draws = torch.rand((ids.numel(), 4), generator=g)
        next_id = int(labels.max()) + 1
        for j in torch.nonzero(chosen).flatten().tolist():
            x0, y0, x1, y1 = boxes[j].tolist()
            h, w = y1 - y0 + 1, x1 - x0 + 1
            if h > H or w > W:
                continue  # a cell larger than the canvas cannot be pasted whole
            mask = source.labels[y0 : y1 + 1, x0 : x1 + 1] == ids[j]
            patch = source.image[:, y0 : y1 + 1, x0 : x1 + 1]
            if self.flip:
                dims = [d for d, u in ((-1, draws[j, 2]), (-2, draws[j, 3])) if u < 0.5]
                if dims:
                    mask, patch = mask.flip(dims), patch.flip(dims)
            y = int(draws[j, 0] * (H - h + 1))
            x = int(draws[j, 1] * (W - w + 1))
            win = image[:, y : y + h, x : x + w]
            image[:, y : y + h, x : x + w] = torch.where(mask, patch, win)
            lab = labels[y : y + h, x : x + w]
            labels[y : y + h, x : x + w] = torch.where(mask, next_id, lab)
            next_id += 1
        labels, _ = relabel_sequential(labels)
        return AnnotatedImage(image, labels, name="naive")
