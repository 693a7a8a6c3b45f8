"""Regenerate the figures of docs/synthesis.md (run from the repository root):

    python docs/figures/synthesis_figures.py

Needs ../shared/data/dsb2018_fluo beside the checkout for the real-data figure."""

from __future__ import annotations

from pathlib import Path

import torch

from iaaa.synthesis import BackgroundConfig, CellCompositor, CompositorConfig, remove_cells
from iaaa.data import read_label_folder
from iaaa.datasets import simulate_cells
from iaaa.preview import contact_sheet, overlay_instances
from iaaa.structures import to_float

OUT = Path(__file__).resolve().parent
DSB = Path(__file__).resolve().parents[3] / "shared" / "data" / "dsb2018_fluo"


def background_stretch(ref: torch.Tensor, labels: torch.Tensor):
    """Display function stretching the source image's *background* pixels (label 0, 0.5 to 99.5
    percentile) over the grey range, applied to both removal methods: fills are compared on the
    scale where background texture is visible, and on the same scale for both."""
    x = to_float(ref)
    flat = x[:3][:, labels == 0].reshape(-1).float()
    lo, hi = torch.quantile(flat[:: max(1, flat.numel() // 500_000)], torch.tensor([0.005, 0.995]))

    def show(img: torch.Tensor) -> torch.Tensor:
        y = to_float(img)
        y = y[:3] if y.shape[0] >= 3 else y[:1].expand(3, -1, -1)
        return (((y - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1) * 255).round().to(torch.uint8)

    return show


def save(path: Path, sheet: torch.Tensor) -> None:
    # An adaptive 256-colour palette keeps noisy microscopy sheets small enough for the docs.
    from PIL import Image

    Image.fromarray(sheet.permute(1, 2, 0).numpy()).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def rows_for(samples, comp, picks, n_synth=2, seed=0):
    rows = []
    for k, i in enumerate(picks):
        s = samples[i]
        show = background_stretch(s.image, s.labels)
        g = torch.Generator().manual_seed(seed + k)
        paper = remove_cells(s.image, s.labels, BackgroundConfig(background_method="paper"), generator=g).image
        ours = remove_cells(s.image, s.labels, BackgroundConfig(background_method="bilinear"), generator=g).image
        row = [overlay_instances(s), show(paper), show(ours)]
        for j in range(n_synth):
            out = comp.sample(torch.Generator().manual_seed(1000 * (seed + k) + j))
            row.append(overlay_instances(out))
        rows.append(row)
    return rows


def main() -> None:
    torch.set_num_threads(1)
    if (DSB / "images").is_dir():
        real = read_label_folder(DSB / "images", DSB / "masks")
        comp = CellCompositor(CompositorConfig().replace(group_by="size"), seed=0).fit(real)
        # Pick one image per source group with backgrounds worth looking at.
        picks = [0, 3, 14, 24]
        sheet = contact_sheet(rows_for(real, comp, picks), cell=160, pad=3)
        save(OUT / "synthesis_dsb2018_fluo.png", sheet)
    for mode in ("fluorescence", "brightfield"):
        sim = simulate_cells(6, seed=4, size=(192, 192), mode=mode)
        comp = CellCompositor(seed=0).fit(sim)
        sheet = contact_sheet(rows_for(sim, comp, [0, 1]), cell=160, pad=3)
        save(OUT / f"synthesis_simulated_{mode}.png", sheet)


if __name__ == "__main__":
    main()
