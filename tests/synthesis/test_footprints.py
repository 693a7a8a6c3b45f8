"""Footprints of a sample's objects against the same steps written the plain way (scipy
dilation, a zero-padded convolution, quadrant sums by slicing): the cut, the tight box, the
alpha and the corner descriptor of every object, whatever its size, mask or channels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from iaaa.boxes import tight_box
from iaaa.filters import feather_radius, gaussian_kernel
from iaaa.synthesis.footprints import footprints


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius * radius


def _reference(img: torch.Tensor, lab: np.ndarray, sigma: float, truncate: float, feather: str, rim: int):
    """One object's footprint: cut, tight box, alpha and the four quadrant means, plainly."""
    reach = feather_radius(sigma, truncate) + rim
    fg = lab > 0
    t = tight_box(fg)
    if t is not None:
        y0, x0 = max(t[0] - reach, 0), max(t[2] - reach, 0)
        y1, x1 = min(t[1] + reach + 1, lab.shape[0]), min(t[3] + reach + 1, lab.shape[1])
        img, lab, fg = img[:, y0:y1, x0:x1], lab[y0:y1, x0:x1], fg[y0:y1, x0:x1]
        t = (t[0] - y0, t[1] - y0, t[2] - x0, t[3] - x0)
    cover = ndi.binary_dilation(fg, _disk(rim)) if rim and fg.any() else fg
    m = torch.from_numpy(cover.astype(np.float32))[None, None]
    a = m[0, 0]
    if sigma > 0:
        k = gaussian_kernel(sigma, truncate)
        r = (k.numel() - 1) // 2
        a = F.conv2d(F.conv2d(F.pad(m, (r, r, r, r)), k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))[0, 0]
    alpha = torch.maximum(a, m[0, 0]) if feather == "outside" else a
    c = img.shape[0]
    desc = np.zeros((4, c), dtype=np.float32)
    if t is not None:
        h, w = lab.shape
        ring = alpha.numpy() * (~cover)
        pix = img.numpy()
        if h >= 2 and w >= 2 and ring.any():
            cy = min(max((t[0] + t[1] + 1) // 2, 1), h - 1)
            cx = min(max((t[2] + t[3] + 1) // 2, 1), w - 1)
            quads = [(slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, w)), (slice(cy, h), slice(0, cx)), (slice(cy, h), slice(cx, w))]
            num = np.stack([(pix[:, ys, xs] * ring[ys, xs]).sum((1, 2)) for ys, xs in quads])
            den = np.array([ring[ys, xs].sum() for ys, xs in quads])
            mean = num.sum(0) / den.sum()
            desc = np.where(den[:, None] > 1e-6, num / np.where(den > 1e-6, den, 1.0)[:, None], mean[None, :])
        else:
            desc = pix[:, [t[0], t[0], t[1], t[1]], [t[2], t[3], t[2], t[3]]].T
    return img, lab, t, alpha, desc


@st.composite
def objects(draw):
    """A sample's objects: a few cell-like masks in crops of mixed sizes (one much larger now
    and then), some touching the crop's edge, some empty or one pixel wide, 1-3 channels."""
    c = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(1, 9))
    rng = np.random.default_rng(seed)
    imgs, labs = [], []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        if rng.random() < 0.15:
            h, w = int(rng.integers(60, 120)), int(rng.integers(60, 120))
        kind = rng.random()
        lab = np.zeros((h, w), dtype=np.int64)
        if kind < 0.1:
            pass  # an empty object
        elif kind < 0.2:
            lab[rng.integers(0, h), :] = 1  # one row: a mask one pixel high
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ry, rx = rng.uniform(0.5, max(h / 2, 1)), rng.uniform(0.5, max(w / 2, 1))
            yy, xx = np.mgrid[:h, :w]
            lab[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
            lab[(lab > 0) & (xx > cx)] = 2  # two cells, a multi-cell object
        imgs.append(torch.from_numpy(rng.random((c, h, w), dtype=np.float32)))
        labs.append(torch.from_numpy(lab))
    return imgs, labs, c


@settings(max_examples=60, deadline=None)
@given(objects(), st.sampled_from([0.0, 1.0, 2.5]), st.integers(0, 6), st.sampled_from(["outside", "centered"]))
def test_footprints_equal_the_plain_steps(objs, sigma, rim, feather):
    imgs, labs, c = objs
    truncate = 3.0
    d = footprints(imgs, labs, sigma, truncate, feather, rim, c)
    assert d.reach == feather_radius(sigma, truncate) + rim
    assert len(d.images) == len(d.alphas) == len(d.labs) == len(d.tights) == len(imgs)
    for j, (img, lab) in enumerate(zip(imgs, labs)):
        cut, cut_lab, t, alpha, desc = _reference(img, lab.numpy(), sigma, truncate, feather, rim)
        assert torch.equal(d.images[j], cut)
        assert np.array_equal(d.labs[j], cut_lab)
        assert d.tights[j] == t
        assert (int(d.th[j]), int(d.tw[j])) == ((t[1] - t[0] + 1, t[3] - t[2] + 1) if t is not None else (0, 0))
        assert d.alphas[j].shape == cut_lab.shape
        torch.testing.assert_close(d.alphas[j], alpha, rtol=0, atol=1e-6)
        assert np.array_equal(d.host_alphas[j], d.alphas[j].numpy())  # the blend reads these on the CPU
        np.testing.assert_allclose(d.desc[j], desc, rtol=1e-5, atol=1e-6)


def test_footprints_of_no_objects():
    d = footprints([], [], 1.0, 3.0, "outside", 2, 3)
    assert d.images == [] and d.desc.shape == (0, 4, 3) and d.th.shape == (0,)
