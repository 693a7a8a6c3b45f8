"""An online arm's paste around one training crop: the paster's cells pasted into a window of
the real image centred on the crop (``Recipe.paste_context`` crop sides wide, or the whole image),
before the crop is cut, as a user's pipeline pastes into whole images before its random crop.

Two resolutions (``Recipe.paste_scale``):

* :func:`paste_window` pastes into the prepared (working-scale) image itself.
* :func:`paste_window_native` pastes into the same window of the image at its own resolution
  (normalised as :func:`~iaaa.judge.train_data.prepare` normalises it) and brings only the pasted
  region to the working scale with :func:`~iaaa.judge.train_data.to_working`, the resize that
  made the prepared image: a user's pipeline pastes into the images it loads, before any resize.
  The region is resized with a margin of working pixels and cut inside it, so where the working
  scale divides the native size exactly (scale 0.5 on even sizes, 0.25 on multiples of 4) every
  pixel the paste did not change gets the prepared image's value (to float rounding); otherwise
  the region sits within half a native pixel of it.

Either way the result is the whole real image (a copy when anything was pasted): cells outside
the window keep their ids, a cell the window cuts stays one instance, pasted cells get ids above
the image's, and a real cell the paste hid entirely is gone.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from iaaa.judge.recipe import WHOLE_IMAGE
from iaaa.judge.train_data import Prepared, to_working
from iaaa.structures import AnnotatedImage, instance_ids

__all__ = ["paste_window", "paste_window_native"]

_MARGIN = 2
"""Working pixels resized beyond the pasted region on each side (the area-averaged resize reaches
about one working pixel from a changed native pixel) and around the resized block (its edges
clamp where the whole-image resize would read on)."""


def _window(y: int, x: int, crop: int, context: float | str, h: int, w: int) -> tuple[int, int, int, int]:
    """``(y0, x0, sh, sw)``: the window ``context`` crops wide around the crop at ``(y, x)``,
    moved inside an ``h x w`` image (``"image"``: the whole image)."""
    if context == WHOLE_IMAGE:
        return 0, 0, h, w
    sh, sw = min(h, round(crop * context)), min(w, round(crop * context))
    return min(max(y - (sh - crop) // 2, 0), h - sh), min(max(x - (sw - crop) // 2, 0), w - sw), sh, sw


def _id_table(window_labels: torch.Tensor, meta: dict[str, Any], top: int) -> torch.Tensor:
    """``PasteCells`` renumbers the window's cells ``1..M`` (survivors, in id order) and the pasted
    ones after them: the table from those ids back to the whole image's (pasted ones above
    ``top``)."""
    kept = instance_ids(window_labels)
    kept = kept[~torch.isin(kept, torch.as_tensor(meta["dropped"], dtype=kept.dtype))]
    return torch.cat([kept.new_zeros(1), kept, top + 1 + torch.arange(len(meta["pasted_ids"]), dtype=kept.dtype)])


def paste_window(paster: Any, src: Prepared, y: int, x: int, crop: int, context: float | str,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, labels)``: ``src`` with ``paster``'s cells pasted into the window around the crop at
    ``(y, x)``, at the working scale (see module docs)."""
    h, w = src.labels.shape
    y0, x0, sh, sw = _window(y, x, crop, context, h, w)
    win = src.labels[y0 : y0 + sh, x0 : x0 + sw]
    s = paster.apply(AnnotatedImage.trusted(image=src.image[:, y0 : y0 + sh, x0 : x0 + sw], labels=win, class_ids=None), generator)
    img, lab = src.image.clone(), src.labels.clone()
    meta = s.meta["paste"]
    if meta["pasted"]:
        lut = _id_table(win, meta, int(src.labels.max()) if src.labels.numel() else 0)
        img[:, y0 : y0 + sh, x0 : x0 + sw] = s.image
        lab[y0 : y0 + sh, x0 : x0 + sw] = lut[s.labels]
    return img, lab


def paste_window_native(paster: Any, src: Prepared, native: AnnotatedImage, y: int, x: int, crop: int, context: float | str,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, labels)``: ``src`` (working scale, possibly padded to the crop) with ``paster``'s
    cells pasted at native resolution into ``native`` (``src``'s image before :func:`prepare
    <iaaa.judge.train_data.prepare>`: normalised float, int64 labels) in the window around the
    crop at ``(y, x)`` of ``src``, the pasted region resized into ``src`` (see module docs). The
    window lies inside the image's unpadded part."""
    h, w = src.size
    big_h, big_w = native.labels.shape
    py, px = (src.labels.shape[0] - h) // 2, (src.labels.shape[1] - w) // 2
    ry, rx = big_h / h, big_w / w
    y0, x0, sh, sw = _window(y - py, x - px, crop, context, h, w)
    ny0, nx0 = round(y0 * ry), round(x0 * rx)
    ny1, nx1 = min(big_h, round((y0 + sh) * ry)), min(big_w, round((x0 + sw) * rx))
    win_img, win_lab = native.image[:, ny0:ny1, nx0:nx1], native.labels[ny0:ny1, nx0:nx1]
    s = paster.apply(AnnotatedImage.trusted(image=win_img, labels=win_lab, class_ids=None), generator)
    meta = s.meta["paste"]
    if not meta["pasted"]:
        return src.image, src.labels
    top = int(native.labels.max()) if native.labels.numel() else 0
    new_lab = _id_table(win_lab, meta, top)[s.labels]
    changed = torch.nonzero((s.image != win_img).any(0) | (new_lab != win_lab))
    if not len(changed):
        return src.image, src.labels
    (cy0, cx0), (cy1, cx1) = changed.min(0).values.tolist(), changed.max(0).values.tolist()
    # The working pixels the change reaches, and a block of native pixels around them to resize.
    wy0, wx0 = max(math.floor((ny0 + cy0) / ry) - _MARGIN, 0), max(math.floor((nx0 + cx0) / rx) - _MARGIN, 0)
    wy1, wx1 = min(math.ceil((ny0 + cy1 + 1) / ry) + _MARGIN, h), min(math.ceil((nx0 + cx1 + 1) / rx) + _MARGIN, w)
    by0, bx0, by1, bx1 = max(wy0 - _MARGIN, 0), max(wx0 - _MARGIN, 0), min(wy1 + _MARGIN, h), min(wx1 + _MARGIN, w)
    nb0, nbx0 = round(by0 * ry), round(bx0 * rx)
    nb1, nbx1 = min(big_h, round(by1 * ry)), min(big_w, round(bx1 * rx))
    block_img = native.image[:, nb0:nb1, nbx0:nbx1].clone()
    block_lab = native.labels[nb0:nb1, nbx0:nbx1].clone()
    # The pasted window's part inside the block (the changed pixels all are).
    iy0, ix0, iy1, ix1 = max(ny0, nb0), max(nx0, nbx0), min(ny1, nb1), min(nx1, nbx1)
    block_img[:, iy0 - nb0 : iy1 - nb0, ix0 - nbx0 : ix1 - nbx0] = s.image[:, iy0 - ny0 : iy1 - ny0, ix0 - nx0 : ix1 - nx0].to(block_img.dtype)
    block_lab[iy0 - nb0 : iy1 - nb0, ix0 - nbx0 : ix1 - nbx0] = new_lab[iy0 - ny0 : iy1 - ny0, ix0 - nx0 : ix1 - nx0]
    small_img, small_lab = to_working(block_img, block_lab, (by1 - by0, bx1 - bx0))
    img, lab = src.image.clone(), src.labels.clone()
    img[:, py + wy0 : py + wy1, px + wx0 : px + wx1] = small_img[:, wy0 - by0 : wy1 - by0, wx0 - bx0 : wx1 - bx0]
    lab[py + wy0 : py + wy1, px + wx0 : px + wx1] = small_lab[wy0 - by0 : wy1 - by0, wx0 - bx0 : wx1 - bx0]
    return img, lab
