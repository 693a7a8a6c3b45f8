"""match_intensity: objects cut from one exposure pasted into another take the destination's
background and cell levels (the map itself, the anchors, and both ways of pasting: the
compositor's samples and PasteCells), labels untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa import CellCompositor, CompositorConfig, PasteCells
from iaaa.structures import AnnotatedImage
from iaaa.synthesis.levels import CONTRAST_FLOOR, GAIN_RANGE, MIXED_SPREAD, exposure_spread, intensity_anchors, match_intensity, mixed_exposures

pytestmark = pytest.mark.usefixtures("one_thread")

level = st.floats(0.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(s_bg=level, s_fg=level, d_bg=level, d_fg=level)
def test_map_sends_source_levels_onto_destination_levels(s_bg, s_fg, d_bg, d_fg):
    src = np.array([[s_bg], [s_fg], [0.0]], np.float32)
    dst = np.array([[d_bg], [d_fg], [0.0]], np.float32)
    x = torch.tensor([[[s_bg, s_fg, (s_bg + s_fg) / 2]]], dtype=torch.float32)
    y = match_intensity(x, src, dst)[0, 0]
    assert y.shape == (3,) and bool(((y >= 0) & (y <= 1)).all())
    # the source background always lands on the destination's background
    assert float(y[0]) == pytest.approx(d_bg, abs=1e-5)
    span = s_fg - s_bg
    gain = (d_fg - d_bg) / span if abs(span) > 1e-4 else None
    if gain is not None and GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        assert float(y[1]) == pytest.approx(d_fg, abs=1e-4)
        assert float(y[2]) == pytest.approx((d_bg + d_fg) / 2, abs=1e-4)
    else:
        # flat or opposite contrast: a shift only, the object's own contrast kept (then clamped)
        assert float(y[1]) == pytest.approx(min(max(d_bg + span, 0.0), 1.0), abs=1e-5)


def test_map_without_anchors_is_the_identity_and_is_per_channel():
    x = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(0))
    assert match_intensity(x, None, np.zeros((3, 2), np.float32)) is x
    src = np.array([[0.1, 0.2], [0.5, 0.4], [0.01, 0.01]], np.float32)
    dst = np.array([[0.2, 0.0], [0.6, 0.8], [0.01, 0.01]], np.float32)
    y = match_intensity(x, src, dst)
    torch.testing.assert_close(y[0], ((x[0] - 0.1) * 1.0 + 0.2).clamp(0, 1))
    torch.testing.assert_close(y[1], ((x[1] - 0.2) * 4.0).clamp(0, 1))


def test_contrast_within_the_noise_gives_a_shift_only():
    """Phase contrast: cells about as bright as the background on average (halo and interior
    cancel), so their ratio would be noise over noise; the object is only shifted."""
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    sd = 0.015
    src = np.array([[0.49], [0.49 + 0.9 * CONTRAST_FLOOR * sd], [sd]], np.float32)
    dst = np.array([[0.48], [0.48 + 0.6 * CONTRAST_FLOOR * sd], [sd]], np.float32)
    torch.testing.assert_close(match_intensity(x, src, dst), (x - 0.49 + 0.48).clamp(0, 1))
    # the same contrasts with quiet backgrounds are measured, and mapped
    src[2], dst[2] = 1e-5, 1e-5
    y = match_intensity(x, src, dst)
    gain = ((dst[1] - dst[0]) / (src[1] - src[0])).item()
    assert gain == pytest.approx(0.6 / 0.9, rel=1e-3)
    torch.testing.assert_close(y, ((x - 0.49) * gain + 0.48).clamp(0, 1))


def _field(bg: float, fg: float, seed: int, size: int = 96) -> AnnotatedImage:
    """Disks at ``fg`` on a background at ``bg`` (uint8, a little noise), 6 cells."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    lab = torch.zeros(size, size, dtype=torch.int64)
    centres = [(20, 20), (20, 70), (48, 45), (75, 20), (75, 72), (50, 84)]
    for k, (cy, cx) in enumerate(centres, 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= 7**2] = k
    img = torch.where(lab > 0, fg, bg) + 0.01 * torch.randn(size, size, generator=g)
    img = (img.clamp(0, 1) * 255).round().to(torch.uint8)[None]
    return AnnotatedImage(img, lab, None, f"field{seed}")


def test_anchors_are_the_background_and_cell_medians():
    s = _field(0.1, 0.6, 0)
    a = intensity_anchors(s.image, s.labels)
    assert a.shape == (3, 1)
    assert a[0, 0] == pytest.approx(0.1, abs=0.01) and a[1, 0] == pytest.approx(0.6, abs=0.01)
    assert a[2, 0] == pytest.approx(0.01, abs=0.005)  # the field's noise sd
    assert intensity_anchors(s.image, torch.zeros_like(s.labels)) is None


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 200), w=st.integers(1, 200), cells=st.floats(0, 1), seed=st.integers(0, 999), wide=st.booleans())
def test_host_anchors_equal_the_torch_medians(c, h, w, cells, seed, wide):
    # The CPU path picks medians with np.partition; torch.median (the lower median of an even
    # count) on the same subsample is the definition, and the values must agree to the bit.
    from iaaa.dtypes import to_float
    from iaaa.synthesis.levels import _ANCHOR_PIXELS

    rng = np.random.default_rng(seed)
    img = torch.from_numpy(rng.integers(0, 65536 if wide else 256, (c, h, w)).astype(np.uint16 if wide else np.uint8))
    lab = torch.from_numpy(rng.integers(1, 4, (h, w)) * (rng.random((h, w)) < cells))
    flat, flab = to_float(img).reshape(c, -1), lab.reshape(-1)
    if flab.numel() > _ANCHOR_PIXELS:
        step = -(-flab.numel() // _ANCHOR_PIXELS)
        flat, flab = flat[:, ::step], flab[::step]
    got = intensity_anchors(img, lab)
    if not (flab == 0).any() or not (flab > 0).any():
        assert got is None
        return
    bg, fg = flat[:, flab == 0], flat[:, flab > 0]
    mb = bg.median(dim=1).values
    want = np.stack([mb.numpy(), fg.median(dim=1).values.numpy(), (1.4826 * (bg - mb[:, None]).abs().median(dim=1).values).numpy()])
    assert got.dtype == np.float32 and np.array_equal(got, want)


def _pasted_levels(sample: AnnotatedImage, real_cells: int) -> list[float]:
    """Median level of each pasted cell's interior (3 px in: the feather blends the edge with
    the destination)."""
    img = sample.image[0].float() / 255
    out = []
    for k in range(real_cells + 1, int(sample.labels.max()) + 1):
        inner = ndi.binary_erosion((sample.labels == k).numpy(), iterations=3)
        out.append(float(img[torch.from_numpy(inner)].median()))
    return out


@pytest.mark.parametrize("match", [False, True])
def test_compositor_pastes_at_the_destination_exposure(match):
    dim, bright = _field(0.05, 0.2, 1), _field(0.15, 0.9, 2)
    cfg = CompositorConfig().replace(group_by=None, count_cap=False, match_intensity=match, rim=False)
    comp = CellCompositor(cfg, policy="identity", seed=0).fit([dim, bright], progress=False)
    assert all(o.anchors is not None for o in comp.objects) and comp.matches_intensity is match
    seen = {"dim": [], "bright": []}
    for i in range(12):
        s = comp.sample(torch.Generator().manual_seed(i))
        onto = "dim" if s.meta["background_source"] == "field1" else "bright"
        real = s.meta["real_cells"]
        assert torch.equal(s.labels[:96, :96][s.labels <= real], (dim if onto == "dim" else bright).labels[s.labels <= real])
        for obj, v in zip(s.meta["objects"], _pasted_levels(s, real)):
            seen[onto].append((obj["source"], v))
    # Objects from the other field: their own level without the map, the destination's with it.
    cross = [(onto, v) for onto, items in seen.items() for src, v in items if src != {"dim": "field1", "bright": "field2"}[onto]]
    assert cross, "no object crossed between the fields in 12 draws"
    for onto, v in cross:
        own, other = (0.2, 0.9) if onto == "dim" else (0.9, 0.2)
        want = own if match else other
        assert abs(v - want) < 0.05, (onto, v, want)


def test_paste_cells_maps_objects_to_the_sample_it_pastes_into():
    dim, bright = _field(0.05, 0.2, 1), _field(0.15, 0.9, 2)
    cfg = CompositorConfig().replace(group_by=None, match_intensity=True, rim=False)
    comp = CellCompositor(cfg, policy="identity", seed=0).fit([bright], progress=False)
    out = PasteCells(comp, p=1.0, n=2).apply(dim, torch.Generator().manual_seed(3))
    levels = _pasted_levels(out, out.num_instances - len(out.meta["paste"]["pasted_ids"]))
    assert len(levels) >= 1 and all(abs(v - 0.2) < 0.05 for v in levels)
    plain = CellCompositor(cfg.replace(match_intensity=False), policy="identity", seed=0).fit([bright], progress=False)
    out = PasteCells(plain, p=1.0, n=2).apply(dim, torch.Generator().manual_seed(3))
    levels = _pasted_levels(out, out.num_instances - len(out.meta["paste"]["pasted_ids"]))
    assert len(levels) >= 1 and all(abs(v - 0.9) < 0.05 for v in levels)


def _anchors(bg: float, fg: float, sd: float = 0.01) -> np.ndarray:
    return np.array([[bg], [fg], [sd]], np.float32)


def test_mixed_exposures_needs_two_measured_contrasts_that_differ_by_the_spread():
    assert exposure_spread([]) == (0, None) and not mixed_exposures([None, None])
    one = [_anchors(0.1, 0.5), _anchors(0.12, 0.56)]  # contrasts 0.40 and 0.44: one exposure
    assert exposure_spread(one) == (2, pytest.approx(0.44 / 0.40)) and not mixed_exposures(one)
    mixed = [_anchors(0.1, 0.5), _anchors(0.05, 0.05 + 0.4 / MIXED_SPREAD * 1.01), None]
    assert exposure_spread(mixed)[0] == 2 and not mixed_exposures(mixed)  # just below the spread
    mixed[1] = _anchors(0.05, 0.05 + 0.4 / MIXED_SPREAD * 0.99)
    assert mixed_exposures(mixed)
    # phase contrast: cells within the noise of the background, nothing measured, whatever the levels
    phase = [_anchors(0.5, 0.5 + 2 * 0.01), _anchors(0.2, 0.2 - 2 * 0.01), _anchors(0.4, 0.4 + 0.5 * 0.01)]
    assert exposure_spread(phase) == (0, None) and not mixed_exposures(phase)
    # a single contrasted image is no mix, however bright
    assert not mixed_exposures([_anchors(0.1, 0.9), _anchors(0.5, 0.51)])
    # channels are averaged: (3, C) and (3,) anchors agree
    kept = [a for a in mixed if a is not None]
    assert exposure_spread([np.repeat(a, 2, axis=1) for a in kept]) == exposure_spread([a[:, 0] for a in kept])


def _draws(comp: CellCompositor, n: int = 6) -> list[AnnotatedImage]:
    return [comp.sample(torch.Generator().manual_seed(i)) for i in range(n)]


@pytest.mark.parametrize("fields, resolved", [(((0.05, 0.2), (0.15, 0.9)), True), (((0.05, 0.5), (0.15, 0.62)), False)])
def test_auto_resolves_on_the_fitted_images_and_then_is_that_setting_exactly(fields, resolved):
    """``match_intensity="auto"`` maps where the fitted images mix exposures (contrasts 0.15 and
    0.75: 5x) and not where they share one (0.45 and 0.47); either way its draws are those of the
    setting it resolved to, pixel for pixel."""
    samples = [_field(bg, fg, k + 1) for k, (bg, fg) in enumerate(fields)]
    cfg = CompositorConfig().replace(group_by=None, count_cap=False, rim=False)
    auto = CellCompositor(cfg.replace(match_intensity="auto"), policy="identity", seed=0).fit(samples, progress=False)
    fixed = CellCompositor(cfg.replace(match_intensity=resolved), policy="identity", seed=0).fit(samples, progress=False)
    other = CellCompositor(cfg.replace(match_intensity=not resolved), policy="identity", seed=0).fit(samples, progress=False)
    assert auto.matches_intensity is resolved and auto.stats.contrasted_images == 2
    assert ("match_intensity on" if resolved else "match_intensity off") in auto.stats.summary()
    a, f, o = _draws(auto), _draws(fixed), _draws(other)
    for x, y in zip(a, f):
        assert torch.equal(x.image, y.image) and torch.equal(x.labels, y.labels)
    # the two settings do draw different images (so the equality above says which one auto took)
    assert any(not torch.equal(x.image, z.image) for x, z in zip(a, o))


def test_auto_is_a_config_value_from_text_and_dicts():
    cfg = CompositorConfig().replace(match_intensity="auto")
    assert cfg.match_intensity == "auto" and CompositorConfig.from_dict(cfg.to_dict()) == cfg
    from iaaa.errors import IaaaError

    with pytest.raises(IaaaError, match="match_intensity"):
        CompositorConfig().replace(match_intensity="sometimes")


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.parametrize("folder, mixed", [("dsb2018_fluo", True), ("usiigaci_phase_dev", False)])
def test_auto_on_real_sets_maps_mixed_fluorescence_and_leaves_phase_contrast(folder, mixed):
    """What ``"auto"`` decides on the shipped real sets: DSB 2018 (nuclei from several labs)
    mixes exposures; the phase-contrast fibroblasts have no cell contrast beyond the noise in any
    image, so no subset of them can switch it on."""
    root = SHARED / folder
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (it sits in ../shared beside the project checkout)")
    from iaaa.data import read_label_folder

    data = sorted(read_label_folder(root / "images", root / "masks"), key=lambda s: s.name)
    anchors = [intensity_anchors(s.image, s.labels) for s in data]
    assert mixed_exposures(anchors) is mixed
    contrasted, spread = exposure_spread(anchors)
    if mixed:
        assert contrasted == len(data) and spread > 2 * MIXED_SPREAD
    else:
        assert (contrasted, spread) == (0, None)


def test_border_fallback_objects_keep_their_image_levels():
    """Images whose every cell touches the frame: the border objects pooled by the fallback carry
    their image's anchors like any other object (what the map reads)."""
    lab = torch.zeros(48, 48, dtype=torch.int64)
    lab[:10, 5:15], lab[38:, 30:40], lab[20:30, :8] = 1, 2, 3
    g = torch.Generator().manual_seed(0)
    img = ((torch.where(lab > 0, 0.8, 0.1) + 0.01 * torch.randn(48, 48, generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)[None]
    s = AnnotatedImage(img, lab, name="edge")
    comp = CellCompositor(CompositorConfig().replace(group_by=None, rim=False), policy="identity", seed=0).fit([s], progress=False)
    assert comp.stats.border_fallback and comp.objects
    want = intensity_anchors(s.image, s.labels)
    assert all(np.array_equal(o.anchors, want) for o in comp.objects)
