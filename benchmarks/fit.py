"""Seconds ``CellCompositor().fit`` takes with 1 and 2 torch threads (issue 20, item 2).

    python benchmarks/fit.py [--data ../shared/data/usiigaci_phase_dev] [--images 16] [--simulated 100] [--repeats 1]

Two workloads, each fitted with the library default (``CellCompositor()``), interleaved 1 thread /
2 threads in one process:

* ``usiigaci``: the first ``--images`` fields of the folder (1022x1024 uint16 phase contrast,
  ~60 dense cells each); target <= 10 s for all 16;
* ``simulated``: ``--simulated`` images of :func:`iaaa.datasets.simulate_cells` at 1024x1024
  (fluorescence, uint8, 40-80 cells); target <= 15 s for 100.

Prints one row per workload and thread count: median wall seconds and user CPU seconds (the
machine may be shared: CPU time is what the fit itself cost) over ``--repeats``, and the wall
ratio to 1 thread. Nothing is asserted; results go to benchmarks/fit.md. To measure another
checkout (e.g. the commit before a change), run this file with that checkout first on
``PYTHONPATH`` and ``--repo`` pointing at it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def _fit(samples: list, threads: int) -> tuple[float, float]:
    import torch

    from iaaa.synthesis import CellCompositor

    torch.set_num_threads(threads)
    c0, t0 = os.times(), time.perf_counter()
    CellCompositor().fit(samples, progress=False)
    wall, c1 = time.perf_counter() - t0, os.times()
    return wall, c1.user - c0.user


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--repo", default=str(here), help="checkout whose iaaa is measured")
    ap.add_argument("--data", default=str(here / ".." / "shared" / "data" / "usiigaci_phase_dev"))
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--simulated", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.repo).resolve()))
    import iaaa
    from iaaa.data import read_label_folder
    from iaaa.datasets import simulate_cells

    workloads = {}
    data = Path(args.data)
    if args.images > 0:
        if not (data / "images").is_dir():
            raise SystemExit(f"no data at {data} (expects images/ and masks/)")
        workloads[f"usiigaci x{args.images}"] = read_label_folder(data / "images", data / "masks")[: args.images]
    if args.simulated > 0:
        workloads[f"simulated 1024 x{args.simulated}"] = simulate_cells(args.simulated, seed=0, size=(1024, 1024), cells=(40, 80))
    times: dict[tuple[str, int], list[tuple[float, float]]] = {(w, t): [] for w in workloads for t in (1, 2)}
    for _ in range(args.repeats):
        for name, samples in workloads.items():
            for threads in (1, 2):
                times[name, threads].append(_fit(samples, threads))
                # Each measurement as it comes, so a long run that is cut short still tells something.
                print(f"# {name}, {threads} thread(s): wall {times[name, threads][-1][0]:.1f} s, user CPU {times[name, threads][-1][1]:.1f} s", flush=True)
    print(f"fit of CellCompositor() with {iaaa.__file__} ({args.repeats} repeat(s), medians)")
    print(f"| {'workload':<22} | threads | wall s | user CPU s | wall vs 1 thread |")
    print(f"|{'-' * 24}|---------|--------|------------|------------------|")
    for name in workloads:
        base = statistics.median(w for w, _ in times[name, 1])
        for threads in (1, 2):
            wall = statistics.median(w for w, _ in times[name, threads])
            user = statistics.median(u for _, u in times[name, threads])
            print(f"| {name:<22} | {threads:>7} | {wall:6.1f} | {user:10.1f} | {wall / base:16.2f} |")


if __name__ == "__main__":
    main()
