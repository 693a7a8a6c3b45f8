"""Images/s delivered by a DataLoader over SynthesisDataset, and export images/s to disk.

    python benchmarks/dataloader.py [--size 512] [--cells 20] [--n 200] [--formats detection label_map] [--no-export]

Fits a CellCompositor on simulated 512x512 fluorescence images with about ``--cells`` cells
each, then times (a) iterating a DataLoader (detection targets, batch 8) for num_workers
0/1/2, (b) ``export_synthetic`` to a temporary folder (PNG + COCO), single process and 2
workers. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from iaaa.synthesis.compositor import CellCompositor
from iaaa.data.dataset import SynthesisDataset, collate_fn
from iaaa.datasets import simulate_cells
from iaaa.export import export_synthetic


def _one_thread(_: int) -> None:
    # Workers inherit nothing useful from the parent's thread setting; two workers with two
    # threads each oversubscribe a 2-core machine.
    torch.set_num_threads(1)


def time_loader(ds, workers: int, batch: int = 8) -> float:
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=collate_fn, persistent_workers=False, worker_init_fn=_one_thread)
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not throughput
    t = time.perf_counter()
    n = 0
    for images, _ in it:
        n += len(images)
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--cells", type=int, default=20)
    p.add_argument("--n", type=int, default=200, help="samples per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1: see benchmarks/README.md)")
    p.add_argument("--formats", nargs="+", default=["detection"], choices=["detection", "label_map", "sample"], help="SynthesisDataset target formats to time")
    p.add_argument("--no-export", action="store_true", help="skip export_synthetic")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lo = max(1, args.cells - 4)
    real = simulate_cells(16, seed=0, size=(args.size, args.size), cells=(lo, args.cells + 4))
    t = time.perf_counter()
    comp = CellCompositor().fit(real)
    fit_s = time.perf_counter() - t
    ds = SynthesisDataset(comp, args.n, seed=0)
    cells = statistics.mean(int(ds[i][1]["labels"].numel()) for i in range(10))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fit on 16 images: {fit_s:.2f} s; ~{cells:.1f} cells per synthetic image")
    print(f"| what | {args.size}x{args.size} images/s (median of {args.repeats}) |")
    print("| --- | --- |")
    for fmt in args.formats:
        ds = SynthesisDataset(comp, args.n, seed=0, target_format=fmt)
        for workers in (0, 1, 2):
            rates = [time_loader(ds, workers) for _ in range(args.repeats)]
            print(f"| DataLoader, {fmt} targets, num_workers={workers}, batch 8 | {statistics.median(rates):.1f} |")
    for workers in (() if args.no_export else (0, 2)):
        rates = []
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                export_synthetic(comp, args.n, tmp, seed=r, workers=workers, progress=False)
                rates.append(args.n / (time.perf_counter() - t))
        print(f"| export_synthetic (PNG + COCO), workers={workers} | {statistics.median(rates):.1f} |")


if __name__ == "__main__":
    main()
