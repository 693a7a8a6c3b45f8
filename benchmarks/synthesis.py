"""Synthesis throughput: iaaa's CellCompositor against copy-paste peers on the same source images.

For each output size (256 / 512 / 1024 px, about 5 / 20 / 80 cells) it measures synthetic
images per second, CPU time per image and peak memory of

* ``iaaa``        CellCompositor.sample in one process (corner-matched location search, overlap
                  avoidance, Gaussian-feathered blending, per-object flip/rotation/intensity policy);
* ``iaaa-bg``     the same with ``onto="background"``: every cell of the image pasted (the
                  defaults paste onto a real image and keep its cells, so they paste fewer);
* ``iaaa-dl2``    the same through a ``torch.utils.data.DataLoader`` with 2 workers;
* ``tv-recipe``   torchvision's reference SimpleCopyPaste recipe (references/detection/transforms.py:
                  paste a random subset of another image's instances at their own positions, union
                  alpha blurred with a 5x5 sigma-2 Gaussian, occluded masks trimmed), re-implemented
                  here because it is a training-script recipe, not a library API;
* ``segpaste``    ``segpaste.CopyPasteTransform`` (PyPI ``segpaste``), pasting the same number of
                  objects at random free positions (its box-IoU rejection, 10 attempts each).

plus ``fit`` time of the compositor, and (``--fit100``) fit on 100 images of 1024x1024.
Every measurement runs in a fresh subprocess (clean peak RSS, no shared caches), pinned to
``--threads`` torch threads (default 1: two OpenMP threads on a shared 2-core machine stall on
every op). Timings are the median over ``--repeats`` runs of ``--n`` images.

``--baseline DIR`` compares this checkout's ``iaaa`` with another one (e.g. a ``git worktree``
of the base commit) instead, in one process: both compositors are fitted on the same sources and
``sample`` is called alternately with the same generators, so both sides run in the same seconds
of a machine whose speed moves by the minute; it prints CPU ms per image of each, the speed-up,
and how many samples' label maps / images differ. ``--options KEY=VALUE ...`` sets compositor
options on this checkout's side only (against a worktree of the same commit: an option measured
against the defaults), ``--both KEY=VALUE ...`` on both sides (a change to a path the defaults
do not take, e.g. ``--both contacts=data``); ``--data DIR`` (a label folder with images/ and masks/, e.g.
../shared/data/dsb2018_fluo) fits both on that real data with the library defaults (each
sample at its background's own size and count) instead of the simulated sizes.

    pip install -r benchmarks/requirements-synthesis.txt
    python benchmarks/synthesis.py                 # full table (a few minutes)
    python benchmarks/synthesis.py --sizes 512 --repeats 3 --fit100
    python benchmarks/synthesis.py --sizes 512 1024 --baseline /tmp/base --n 100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CELLS = {256: 5, 512: 20, 1024: 80}
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- sources


def sources(size: int, cells: int, n: int = 12):
    """The same simulated source images for every method: ``n`` images of ``size``^2 with about
    ``cells`` cells (the simulator drops cells that do not fit)."""
    from iaaa.datasets import simulate_cells

    lo, hi = max(1, int(cells * 0.8)), int(cells * 1.25) + 1
    radius = (6.0, 14.0) if size <= 512 else (8.0, 20.0)
    return simulate_cells(n, seed=123, size=(size, size), cells=(lo, hi), radius=radius)


# ----------------------------------------------------------------------------- the torchvision recipe


def tv_copy_paste(image, target, paste_image, paste_target, generator):
    """torchvision's SimpleCopyPaste reference recipe for one (image, paste image) pair: a random
    subset of the paste image's instances (unique of n draws in [0, n)) pasted at their own
    positions through the union mask blurred by a 5x5, sigma 2 Gaussian; the target's masks lose
    the pasted pixels and vanish when empty; boxes recomputed from masks."""
    import torch
    from torchvision.ops import masks_to_boxes
    from torchvision.transforms.v2 import functional as TF

    n = paste_target["masks"].shape[0]
    if n == 0:
        return image, target
    sel = torch.unique(torch.randint(0, n, (n,), generator=generator))
    masks_p = paste_target["masks"][sel]
    union = masks_p.any(0)
    alpha = TF.gaussian_blur(union[None].float(), kernel_size=[5, 5], sigma=[2.0])
    image = image * (1 - alpha) + paste_image * alpha
    masks = target["masks"] & ~union
    keep = masks.flatten(1).any(1)
    masks = masks[keep]
    out = {
        "masks": torch.cat([masks, masks_p]),
        "boxes": torch.cat([masks_to_boxes(masks), paste_target["boxes"][sel]]),
        "labels": torch.cat([target["labels"][keep], paste_target["labels"][sel]]),
        "n_pasted": int(sel.numel()),
    }
    return image, out


# ----------------------------------------------------------------------------- workers


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _timed(run, n: int, repeats: int, helpers=lambda: []):
    """Median wall time and CPU time (this process plus the live ``helpers()`` pids, e.g.
    DataLoader workers) over ``repeats`` runs of ``n`` images."""
    walls, cpus, cells = [], [], []
    run(2)  # warm-up: caches, lazy imports, worker start-up
    for _ in range(repeats):
        pids = helpers()
        w0, c0 = time.perf_counter(), time.process_time() + sum(_proc_cpu(p) for p in pids)
        got = run(n)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() + sum(_proc_cpu(p) for p in pids) - c0)
        cells.append(got)
    return {
        "images_per_s": n / statistics.median(walls),
        "cpu_ms_per_image": 1000 * statistics.median(cpus) / n,
        "cells_per_image": statistics.mean(cells) / n,
        "wall_s": walls,
    }


def worker(method: str, size: int, n: int, repeats: int, workers: int) -> dict:
    import torch

    cells = CELLS[size]
    src = sources(size, cells)
    out: dict = {"method": method, "size": size, "target_cells": cells}
    if method in ("iaaa", "iaaa-bg", "iaaa-dl2"):
        from iaaa.synthesis import CellCompositor, CompositorConfig

        t0 = time.perf_counter()
        config = CompositorConfig().replace(size=(size, size), count=cells)
        if method == "iaaa-bg":  # every cell pasted: onto a cleaned background instead of the real image
            config = config.replace(onto="background")
        comp = CellCompositor(config).fit(src)
        out["fit_s"] = time.perf_counter() - t0
        out["fit_images"] = len(src)
        if method in ("iaaa", "iaaa-bg"):
            counter = iter(range(10**9))

            def run(k):
                tot = 0
                for _ in range(k):
                    s = comp.sample(torch.Generator().manual_seed(next(counter)))
                    # pasted cells: ids are 1..N, one class id each (counting them from the
                    # label map would add a pass over every pixel to the time), the real
                    # image's own cells first when the defaults paste onto it
                    tot += len(s.class_ids) - int(s.meta.get("real_cells", 0))
                return tot

            out.update(_timed(run, n, repeats))
        else:
            ds = _Synth(comp)
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=True, prefetch_factor=4)

            def run(k):
                tot = 0
                for i, (img, lab, real_cells) in enumerate(loader):
                    tot += int(lab.max()) - int(real_cells)
                    if i + 1 == k:
                        break
                return tot

            ds.length = n

            def workers_pids():
                it = getattr(loader, "_iterator", None)
                return [w.pid for w in getattr(it, "_workers", [])]

            out.update(_timed(run, n, repeats, workers_pids))
    elif method == "tv-recipe":
        from iaaa.structures import labels_to_masks, to_float

        data = []
        for s in src:
            masks, _ = labels_to_masks(s.labels)
            # The recipe runs on float image tensors (after ConvertImageDtype in the reference).
            data.append((to_float(s.image), {"masks": masks, "boxes": s.boxes, "labels": s.class_ids}))
        g = torch.Generator().manual_seed(0)
        counter = iter(range(10**9))

        def run(k):
            tot = 0
            for _ in range(k):
                i = next(counter) % len(data)
                img, tgt = data[i]
                pimg, ptgt = data[i - 1]
                _, o = tv_copy_paste(img, tgt, pimg, ptgt, g)
                tot += o["n_pasted"]
            return tot

        out.update(_timed(run, n, repeats))
        out["note"] = "cells_per_image counts pasted instances"
    elif method == "segpaste":
        import random

        import segpaste
        from segpaste import CopyPasteAugmentation, CopyPasteConfig, CopyPasteTransform
        from segpaste.types import DetectionTarget

        from iaaa.structures import labels_to_masks

        random.seed(0)
        torch.manual_seed(0)  # segpaste draws from the global RNGs
        samples, objects = [], []
        for s in src:
            masks, _ = labels_to_masks(s.labels)
            boxes = s.boxes
            boxes[:, 2:] += 1  # segpaste expects exclusive maxima
            d = {"image": s.image, "boxes": boxes, "labels": s.class_ids, "masks": masks}
            samples.append(d)
            for j in range(masks.shape[0]):
                objects.append(DetectionTarget(image=s.image, boxes=boxes[j : j + 1], labels=s.class_ids[j : j + 1], masks=masks[j : j + 1]))
        cfg = CopyPasteConfig(paste_probability=1.0, min_paste_objects=cells, max_paste_objects=cells)
        tf = CopyPasteTransform(objects, CopyPasteAugmentation(cfg))
        counter = iter(range(10**9))

        def run(k):
            tot = 0
            for _ in range(k):
                d = samples[next(counter) % len(samples)]
                o = tf(dict(d))
                tot += o["masks"].shape[0] - d["masks"].shape[0]
            return tot

        out.update(_timed(run, n, repeats))
        out["version"] = getattr(segpaste, "__version__", "0.2.0")
        out["note"] = "cells_per_image counts net added instances (pasted minus fully occluded)"
    else:
        raise ValueError(method)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


class _Synth:
    """Minimal map-style dataset over the compositor: item i = sample(seed i)."""

    def __init__(self, comp):
        self.comp = comp
        self.length = 10**6

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        import torch

        s = self.comp.sample(torch.Generator().manual_seed(i))
        return s.image, s.labels, int(s.meta.get("real_cells", 0))


def fit100(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from iaaa.synthesis.compositor import CellCompositor
    from iaaa.datasets import simulate_cells

    t0 = time.perf_counter()
    data = simulate_cells(100, seed=7, size=(1024, 1024), cells=(60, 100), radius=(8.0, 20.0))
    sim_s = time.perf_counter() - t0
    w0, c0 = time.perf_counter(), time.process_time()
    comp = CellCompositor().fit(data)
    return {
        "method": "fit100", "simulate_s": sim_s, "fit_s": time.perf_counter() - w0, "fit_cpu_s": time.process_time() - c0,
        "cells": int(sum(comp.stats.cells_per_image)), "objects": comp.stats.n_sco + comp.stats.n_mco,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ----------------------------------------------------------------------------- driver


def _run_sub(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, __file__, *args, "--threads", str(threads)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--methods", nargs="+", default=["iaaa", "iaaa-bg", "iaaa-dl2", "tv-recipe", "segpaste"])
    ap.add_argument("--n", type=int, default=40, help="images per timed run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fit100", action="store_true", help="also time fit on 100 simulated 1024x1024 images")
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--baseline", default=None, help="another checkout to compare iaaa with, sample by sample (see module docs)")
    ap.add_argument("--data", type=Path, default=None, help="with --baseline: a label folder (images/, masks/) to fit on instead of the simulator")
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="with --baseline: compositor options of this checkout's side")
    ap.add_argument("--both", nargs="+", default=[], metavar="KEY=VALUE", help="with --baseline: compositor options of both sides")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        import torch

        torch.set_num_threads(a.threads)
        res = fit100(a.threads) if a.worker == "fit100" else worker(a.worker, a.size, a.n, a.repeats, a.workers)
        print(json.dumps(res))
        return

    import torch

    if a.baseline:
        torch.set_num_threads(a.threads)
        baseline(a.baseline, a.sizes, a.n, a.options, a.data, a.both)
        return
    results = []
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs, {a.threads} torch thread(s) per process, median of {a.repeats} x {a.n} images\n")
    print("| size | cells | method | images/s (wall) | CPU ms/image | pasted cells/image | fit s | peak RSS MB | iaaa/peer wall | iaaa/peer CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in a.sizes:
        rows = {}
        for m in a.methods:
            n = max(8, a.n // 4) if size >= 1024 else a.n
            r = _run_sub(["--worker", m, "--size", str(size), "--n", str(n), "--repeats", str(a.repeats), "--workers", str(a.workers)], a.threads)
            r.setdefault("method", m)
            r.setdefault("size", size)
            rows[m] = r
            results.append(r)
        base = rows.get("iaaa", {})
        for m, r in rows.items():
            if "error" in r:
                print(f"| {size} | {CELLS[size]} | {m} | failed: {r['error']} | | | | | | |")
                continue
            peer = m not in ("iaaa", "iaaa-bg", "iaaa-dl2") and "images_per_s" in base
            wall = f"{base['images_per_s'] / r['images_per_s']:.2f}" if peer else ""
            cpu = f"{r['cpu_ms_per_image'] / base['cpu_ms_per_image']:.2f}" if peer else ""
            fit = f"{r['fit_s']:.2f}" if "fit_s" in r else ""
            print(f"| {size} | {CELLS[size]} | {m} | {r['images_per_s']:.1f} | {r['cpu_ms_per_image']:.2f} | {r['cells_per_image']:.1f} | {fit} | {r['peak_rss_mb']:.0f} | {wall} | {cpu} |")
    if a.fit100:
        r = _run_sub(["--worker", "fit100"], a.threads)
        results.append(r)
        if "error" in r:
            print(f"\nfit on 100 x 1024x1024: failed: {r['error']}")
        else:
            print(f"\nfit on 100 simulated 1024x1024 images ({r['cells']} cells, {r['objects']} objects): {r['fit_s']:.1f} s wall, {r['fit_cpu_s']:.1f} s CPU, peak RSS {r['peak_rss_mb']:.0f} MB")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


def baseline(root: str, sizes: list[int], n: int, options: list[str] = (), data: Path | None = None, both: list[str] = ()) -> None:
    """``CellCompositor.sample`` (library defaults and ``both``; this side with ``options``) of this checkout
    and of ``root``, alternated call by call with the same generators (see module docs)."""
    import torch
    from baseline import load_baseline  # benchmarks/baseline.py, beside this script

    import iaaa
    from iaaa.commands.judge import parse_pairs

    base = load_baseline(root)
    extra = parse_pairs(list(options), "--options") if options else {}
    shared = parse_pairs(list(both), "--both") if both else {}
    print(f"# torch threads {torch.get_num_threads()}; baseline {Path(root).resolve()} (as iaaa_base); samples alternated, CPU time; "
          f"both sides' options {shared or 'none'}; this side's options {extra or 'none'}\n")
    print("| size | cells | samples | base CPU ms/image | CPU ms/image | speed-up | samples differing: labels / images (max) |")
    print("|---|---|---|---|---|---|---|")
    if data is not None:
        from iaaa.data import read_label_folder

        real = read_label_folder(data / "images", data / "masks")
    for size in ([None] if data is not None else sizes):
        src = real if size is None else sources(size, CELLS[size])
        setting = dict(shared) if size is None else {"size": (size, size), "count": CELLS[size], **shared}
        comps = {}
        for k, lib in (("base", base), ("this", iaaa)):
            images = src if lib is iaaa else [base.structures.AnnotatedImage(s.image, s.labels, s.class_ids, s.name) for s in src]
            comps[k] = lib.CellCompositor(lib.CompositorConfig().replace(**setting, **(extra if k == "this" else {}))).fit(images, progress=False)
        spent = {"base": 0.0, "this": 0.0}
        labels_differ, differ, most = 0, 0, 0.0
        for i in range(-2, n):  # calls -2, -1 warm both up, untimed
            out = {}
            for k in (("base", "this") if i % 2 == 0 else ("this", "base")):
                g = torch.Generator().manual_seed(max(i, 0))
                t0 = time.process_time()
                out[k] = comps[k].sample(g)
                if i >= 0:
                    spent[k] += time.process_time() - t0
            if i < 0:
                continue
            labels_differ += not torch.equal(out["base"].labels, out["this"].labels)
            gap = float((out["base"].image.double() - out["this"].image.double()).abs().max())
            differ += gap > 0
            most = max(most, gap)
        print(f"| {data.name if size is None else size} | {'data' if size is None else CELLS[size]} | {n} | {spent['base'] / n * 1e3:.2f} | {spent['this'] / n * 1e3:.2f} | "
              f"{spent['base'] / spent['this']:.2f} | {labels_differ} / {differ} (max {most:g}) |")


if __name__ == "__main__":
    main()
