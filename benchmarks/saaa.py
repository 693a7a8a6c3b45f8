"""SAAA realism: generated masks and images against real dsb2018_fluo crops, beside IAAA and a naive baseline.

Everything is compared as ``--size`` px tiles (the size SAAA samples at):

* ``real A``       random crops of the real images (the reference);
* ``real B``       other random crops of the same images (the floor: what "as real as real" scores);
* ``SAAA``         ``SAAA.sample`` (DDPM masks -> watershed -> Pix2Pix), the model in ``--model``;
* ``SAAA/<p>``     the same generated masks rendered by the Pix2Pix generators of ``--ablation``
                   folders (trained with another perceptual loss; same crops, steps and seed);
* ``p2p/<p>(real m.)`` each Pix2Pix generator rendering real A's label maps (the renderer alone);
* ``naive``        the SAAA masks painted with the data's mean cell and background intensities
                   plus Gaussian noise of the data's cell and background standard deviations;
* ``IAAA``         ``iaaa.CellCompositor().fit(real)`` samples, cut into random tiles.

Masks: Kolmogorov-Smirnov distances of area, perimeter, eccentricity and solidity of cells that
do not touch the tile border, of cells per tile and of nearest-neighbour centroid distances,
each against real A. Images: KID (offline ``PyramidStatsFeatures``, standardised) and SWD at
the tile level and the single-cell-object level (``iaaa.metrics.evaluate_fidelity``).

    bash benchmarks/saaa_train.sh out/saaa          # ~45 min on a shared 2-core CPU
    python benchmarks/saaa.py --model out/saaa/wae --ablation out/saaa/random out/saaa/none \\
        --figures docs/figures --json out/saaa/bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage, stats
from scipy.spatial import ConvexHull, QhullError, cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iaaa.structures import AnnotatedImage  # noqa: E402


# ----------------------------------------------------------------------------- mask statistics


def cell_stats(labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-cell shape features of one tile (cells touching the border excluded) and the tile's
    layout numbers (cell count over all cells, nearest-neighbour centroid distances)."""
    lab = labels.numpy()
    ids = np.unique(lab[lab > 0])
    out = {k: [] for k in ("area", "perimeter", "eccentricity", "solidity")}
    if ids.size == 0:
        return {**{k: np.zeros(0) for k in out}, "count": np.array([0.0]), "nn": np.zeros(0)}
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    yy, xx = np.mgrid[: lab.shape[0], : lab.shape[1]].astype(np.float64)
    area = np.asarray(ndimage.sum(np.ones_like(lab), lab, ids))
    my, mx = np.asarray(ndimage.mean(yy, lab, ids)), np.asarray(ndimage.mean(xx, lab, ids))
    syy = np.asarray(ndimage.mean(yy * yy, lab, ids)) - my**2
    sxx = np.asarray(ndimage.mean(xx * xx, lab, ids)) - mx**2
    sxy = np.asarray(ndimage.mean(xx * yy, lab, ids)) - mx * my
    tr, det = sxx + syy, sxx * syy - sxy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    ecc = np.sqrt(np.clip(1 - l2 / np.maximum(l1, 1e-12), 0, 1))
    pad = np.pad(lab, 1)
    edge = np.zeros_like(lab, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= pad[dy : dy + lab.shape[0], dx : dx + lab.shape[1]] != lab
    perim = np.asarray(ndimage.sum(edge & (lab > 0), lab, ids))
    objs = ndimage.find_objects(lab)
    keep = ~np.isin(ids, border)
    for k, i in enumerate(ids):
        if not keep[k]:
            continue
        sl = objs[i - 1]
        ys, xs = np.nonzero(lab[sl] == i)
        corners = np.concatenate([np.stack([ys + dy, xs + dx], 1) for dy in (0, 1) for dx in (0, 1)])
        try:
            hull = ConvexHull(corners).volume
        except QhullError:
            hull = float(area[k])
        out["area"].append(area[k])
        out["perimeter"].append(perim[k])
        out["eccentricity"].append(ecc[k])
        out["solidity"].append(area[k] / max(hull, 1.0))
    cent = np.stack([my, mx], 1)
    nn = cKDTree(cent).query(cent, k=2)[0][:, 1] if len(ids) > 1 else np.zeros(0)
    return {**{k: np.asarray(v, dtype=np.float64) for k, v in out.items()}, "count": np.array([float(len(ids))]), "nn": nn}


def pooled_stats(label_maps: list[torch.Tensor]) -> dict[str, np.ndarray]:
    per = [cell_stats(l) for l in label_maps]
    return {k: np.concatenate([p[k] for p in per]) for k in per[0]}


#: Sets with masks of their own; the renderer variants and the naive baseline reuse SAAA's masks.
OWN_MASKS = ("real B", "SAAA", "IAAA")
MASK_KEYS = ("area", "perimeter", "eccentricity", "solidity", "count", "nn")


def ks_row(ref: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(stats.ks_2samp(ref[k], other[k]).statistic) if len(ref[k]) and len(other[k]) else float("nan") for k in MASK_KEYS}


# ----------------------------------------------------------------------------- image sets


def tiles_from(samples: list[AnnotatedImage], size: int, per_image: int, seed: int) -> list[AnnotatedImage]:
    from iaaa.saaa.model import random_crops
    from iaaa.structures import relabel_sequential
    from iaaa.dtypes import from_float

    imgs, labs = random_crops(samples, size, per_image, torch.Generator().manual_seed(seed))
    dtype = samples[0].image.dtype
    return [AnnotatedImage(from_float(i, dtype), relabel_sequential(l)[0], name=f"tile{k}") for k, (i, l) in enumerate(zip(imgs, labs))]


def naive_paint(label_maps: list[torch.Tensor], real: list[AnnotatedImage], seed: int) -> list[AnnotatedImage]:
    """Cells at the data's mean cell intensity, background at its mean, each plus Gaussian noise
    with the data's cell / background standard deviation (per channel)."""
    from iaaa.dtypes import from_float, to_float

    imgs = [to_float(s.image) for s in real]
    cell = torch.cat([im[:, s.labels > 0] for im, s in zip(imgs, real)], 1)
    bg = torch.cat([im[:, s.labels == 0] for im, s in zip(imgs, real)], 1)
    mc, sc, mb, sb = (t.view(-1, 1, 1) for t in (cell.mean(1), cell.std(1), bg.mean(1), bg.std(1)))
    g = torch.Generator().manual_seed(seed)
    out = []
    for lab in label_maps:
        noise = torch.randn((cell.shape[0], *lab.shape), generator=g)
        img = torch.where(lab > 0, mc + sc * noise, mb + sb * noise)
        out.append(AnnotatedImage(from_float(img, real[0].image.dtype), lab, name="naive"))
    return out


def saaa_samples(model, n: int, seed: int, batch: int = 16) -> list[AnnotatedImage]:
    out = []
    for k in range(0, n, batch):
        out += model.sample_batch(min(batch, n - k), torch.Generator().manual_seed(seed * 100_003 + k))
    return out


def rerender(model, labels: list[torch.Tensor], seed: int, batch: int = 32) -> list[AnnotatedImage]:
    out = []
    for k in range(0, len(labels), batch):
        lab = torch.stack(labels[k : k + batch])
        imgs = model.render(lab, torch.Generator().manual_seed(seed + k))
        out += [AnnotatedImage(i, l) for i, l in zip(imgs, lab)]
    return out


def iaaa_tiles(real: list[AnnotatedImage], n_images: int, size: int, per_image: int, seed: int) -> list[AnnotatedImage]:
    from iaaa.synthesis import CellCompositor
    from iaaa.data.dataset import sample_generator

    comp = CellCompositor().fit(real)
    synth = [comp.sample(sample_generator(seed, i)) for i in range(n_images)]
    return tiles_from(synth, size, per_image, seed + 1)


def image_metrics(real: list[AnnotatedImage], fake: list[AnnotatedImage], size: int, seed: int) -> dict[str, float]:
    from iaaa.metrics import evaluate_fidelity

    rep = evaluate_fidelity(real, fake, levels=("image", "sco"), metrics=("kid", "swd"), tile=size, image_size=size, crop_size=32, seed=seed)
    out = {}
    for row in rep.levels:
        out[f"kid_{row.level}"] = row.kid.mean if row.kid is not None else float("nan")
        out[f"kid_{row.level}_std"] = row.kid.std if row.kid is not None else float("nan")
        out[f"swd_{row.level}"] = row.swd.mean if row.swd is not None else float("nan")
        out[f"n_{row.level}"] = row.n_synthetic
    return out


# ----------------------------------------------------------------------------- figures


def save_figures(folder: Path, real: list[AnnotatedImage], rendered_real: list[AnnotatedImage], sets: dict[str, list[AnnotatedImage]], n: int = 6, name: str = "saaa_real_vs_generated.png") -> list[Path]:
    """One contact sheet, one display scale: real tiles (image, outlines), the Pix2Pix rendering
    of those same real masks, then image + outlines of each generated set."""
    from PIL import Image

    from iaaa.dtypes import to_float
    from iaaa.preview import contact_sheet, display_image, overlay_instances

    # One display scale for every tile (the real tiles' 99.5th percentile), so brightness
    # differences between the sets stay visible.
    hi = float(torch.quantile(torch.cat([to_float(s.image).flatten() for s in real])[::7], 0.995))

    def pic(s: AnnotatedImage) -> torch.Tensor:
        return (display_image(s.image, limits=(0.0, hi)) * 255).round().to(torch.uint8)

    # Real tiles with at least two cells, spread over the images (tiles are in image order).
    busy = [i for i, s in enumerate(real) if int(s.labels.max()) >= 2]
    pick = busy[:: max(1, len(busy) // n)][:n]
    rows = [[pic(real[i]) for i in pick], [overlay_instances(real[i]) for i in pick], [pic(rendered_real[i]) for i in pick]]
    for items in sets.values():
        rows += [[pic(s) for s in items[:n]], [overlay_instances(s) for s in items[:n]]]
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    # A 96-colour palette halves the file (grey tiles plus a few outline colours).
    sheet = Image.fromarray(contact_sheet(rows, pad=2, cell=64).permute(1, 2, 0).numpy())
    sheet.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(p, optimize=True)
    return [p]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="SAAA model folder (iaaa saaa fit)")
    ap.add_argument("--ablation", nargs="*", default=[], help="SAAA folders whose Pix2Pix generators re-render the same masks")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dsb2018_fluo"))
    ap.add_argument("--n", type=int, default=160, help="tiles per set (default: %(default)s)")
    ap.add_argument("--iaaa-images", type=int, default=40, help="IAAA images cut into tiles (default: %(default)s)")
    ap.add_argument("--ddim-steps", type=int, default=25, help="DDIM steps when sampling masks (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--figures", help="folder for the PNG figures")
    ap.add_argument("--figure-name", default="saaa_real_vs_generated.png", help="file name of the figure in --figures")
    ap.add_argument("--json", help="write all numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from iaaa.data import read_label_folder
    from iaaa.saaa import SAAA

    t0 = time.perf_counter()
    data = Path(args.data)
    real = read_label_folder(data / "images", data / "masks")
    model = SAAA.load(args.model)
    model.diffusion.config.sample_steps = args.ddim_steps
    size = model.config.size
    per = -(-args.n // len(real))
    real_a = tiles_from(real, size, per, 1001)[: args.n]
    real_b = tiles_from(real, size, per, 2002)[: args.n]
    sets: dict[str, list[AnnotatedImage]] = {"real B": real_b}
    t = time.perf_counter()
    sets["SAAA"] = saaa_samples(model, args.n, args.seed)
    print(f"SAAA: {args.n} samples in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    gen_labels = [s.labels for s in sets["SAAA"]]
    others = [SAAA.load(folder) for folder in args.ablation]
    for other in others:
        sets[f"SAAA/{other.config.perceptual}"] = rerender(other, gen_labels, args.seed)
    real_labels = [s.labels for s in real_a]
    sets[f"p2p/{model.config.perceptual}(real m.)"] = rerender(model, real_labels, args.seed + 7)
    for other in others:
        sets[f"p2p/{other.config.perceptual}(real m.)"] = rerender(other, real_labels, args.seed + 7)
    sets["naive"] = naive_paint(gen_labels, real, args.seed)
    sets["IAAA"] = iaaa_tiles(real, args.iaaa_images, size, -(-args.n // args.iaaa_images), args.seed)[: args.n]
    ref = pooled_stats([s.labels for s in real_a])
    rows = {}
    for name, items in sets.items():
        rows[name] = {"masks": ks_row(ref, pooled_stats([s.labels for s in items])), "images": image_metrics(real_a, items, size, args.seed)}
        print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    mask_hdr = " | ".join(MASK_KEYS)
    print(f"\nMask realism: KS distance to real A ({args.n} tiles of {size} px; 0 = same distribution)\n")
    print(f"| set | {mask_hdr} |\n|---|" + "---|" * len(MASK_KEYS))
    for name, r in rows.items():
        if name in OWN_MASKS:  # the other sets reuse SAAA's or real A's masks
            print(f"| {name} | " + " | ".join(f"{r['masks'][k]:.3f}" for k in MASK_KEYS) + " |")
    print("\nImage realism against real A (KID x 1000 as mean ± std over subsets, offline PyramidStatsFeatures, standardised; SWD x 1000)\n")
    print("| set | KID tile | SWD tile | KID SCO | SWD SCO | n SCO |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        m = r["images"]
        print(f"| {name} | {1000 * m['kid_image']:.2f} ± {1000 * m['kid_image_std']:.2f} | {1000 * m['swd_image']:.1f} | {1000 * m['kid_sco']:.2f} ± {1000 * m['kid_sco_std']:.2f} | {1000 * m['swd_sco']:.1f} | {m['n_sco']} |")
    if args.figures:
        show = {k: sets[k] for k in ("SAAA", "naive", "IAAA") if k in sets}
        for p in save_figures(Path(args.figures), real_a, sets[f"p2p/{model.config.perceptual}(real m.)"], show, name=args.figure_name):
            print(f"wrote {p}", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"settings": vars(args), "size": size, "rows": rows}, indent=2))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
