"""Cell removal quality: remnants of removed cells in cleaned backgrounds, and time per image.

For each real dataset (by path), the halo width is measured (:func:`iaaa.synthesis.halo.measure_halo`)
and every image's cells are removed by

* ``paper``     the paper's box fill (``iaaa.synthesis.background.remove_cells(image, labels, BackgroundConfig(background_method="paper"))``);
* ``bilinear``  the box fill with bilinear corner targets and block texture (today's default);
* ``mask``      mask-level removal: halo-grown masks, coarse-to-fine level + real residual
                texture (:func:`iaaa.synthesis.inpaint.remove_cells_by_mask`);

and, as the reference a remnant score must beat, ``none`` (the original image: cells present).
Every method is scored on the same region, the cells grown by the measured halo, with
:func:`iaaa.metrics.remnants.remnant_scores` against the original's true background: contrast of
each filled region vs its ring (background sd units), the share of filled pixels that are blobs at
scales 1-8 px (about 0.01 for real background) and of texture outliers (about 0.02). Besides the
scores, ``kept`` is the share of true-background pixels (beyond the halo) returned bit-identical.

    python benchmarks/background.py                   # both datasets, all images (~2 min)
    python benchmarks/background.py --figures          # also docs/figures/background_*.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iaaa.synthesis.background import BackgroundConfig, remove_cells  # noqa: E402
from iaaa.data import read_label_folder  # noqa: E402
from iaaa.metrics.remnants import remnant_scores  # noqa: E402
from iaaa.synthesis.halo import grow_masks, measure_halo  # noqa: E402
from iaaa.synthesis.inpaint import remove_cells_by_mask  # noqa: E402

DATASETS = ("usiigaci_phase_dev", "dsb2018_fluo")
METHODS = ("none", "paper", "bilinear", "mask")


def clean(method: str, image: torch.Tensor, labels: torch.Tensor, halo: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if method == "none":
        return image
    if method in ("paper", "bilinear"):
        return remove_cells(image, labels, BackgroundConfig(background_method=method), generator=g).image
    return remove_cells_by_mask(image, labels, halo, generator=g).image


def stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)


def figure(name: str, sample, halo: int, out: Path, crop: int) -> None:
    """One row: original (full range), then original and each method stretched to the
    background's range (1st-99.5th percentile of the true background), so remnants show."""
    from PIL import Image

    img, lab = sample.image, sample.labels
    hole = (grow_masks(lab, halo) > 0).numpy()
    a = img.float().mean(0).numpy()
    h, w = a.shape
    s = min(crop, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    lo, hi = np.percentile(a[~hole], [1, 99.5])
    panels = [stretch(a, *np.percentile(a, [1, 99.8]))]
    for m in METHODS:
        panels.append(stretch(clean(m, img, lab, halo, 0).float().mean(0).numpy(), lo, hi))
    row = np.concatenate([p[y0 : y0 + s, x0 : x0 + s] for p in panels], 1)
    im = Image.fromarray(row)
    if s > 256:
        im = im.resize((row.shape[1] * 256 // s, 256), Image.BILINEAR)
    im.save(out / f"background_{name}.png", optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--limit", type=int, default=0, help="first N images per dataset (0: all)")
    ap.add_argument("--figures", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name in args.datasets:
        d = Path(args.data) / name
        if not (d / "images").is_dir():
            print(f"skip {name}: no data at {d}")
            continue
        samples = read_label_folder(d / "images", d / "masks")
        if args.limit:
            samples = samples[: args.limit]
        halo, widths = measure_halo(samples)
        print(f"\n{name}: {len(samples)} images, halo width {halo} px (per image: {widths})")
        rows = {m: [] for m in METHODS}
        times = {m: [] for m in METHODS}
        kept = {m: [] for m in METHODS}
        for i, s in enumerate(samples):
            hole = grow_masks(s.labels, halo) > 0
            if bool(hole.all()):
                continue
            for m in METHODS:
                t = time.perf_counter()
                out = clean(m, s.image, s.labels, halo, i)
                times[m].append(time.perf_counter() - t)
                rows[m].append(remnant_scores(out, s.image, hole))
                kept[m].append(float((out == s.image).all(0)[~hole].float().mean()))
        keys = [k for k in rows["mask"][0] if k != "regions"]
        print(f"{'method':10s} " + " ".join(f"{k:>13s}" for k in keys) + f" {'kept':>6s} {'s/img':>6s}")
        results[name] = {"halo": halo, "halo_per_image": widths}
        for m in METHODS:
            med = {k: statistics.median(r[k] for r in rows[m]) for k in keys}
            med["kept"] = statistics.median(kept[m])
            med["seconds"] = statistics.median(times[m])
            results[name][m] = med
            print(f"{m:10s} " + " ".join(f"{med[k]:13.3f}" for k in keys) + f" {med['kept']:6.3f} {med['seconds']:6.2f}")
        if args.figures:
            out = ROOT / "docs" / "figures"
            figure(name, samples[0] if name.startswith("usiigaci") else samples[3], halo, out, 384 if name.startswith("usiigaci") else 256)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
