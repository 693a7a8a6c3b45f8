"""Seconds ``CellCompositor().fit`` takes on real phase-contrast fields with 1 and 2 torch threads.

    python benchmarks/fit.py [--data ../shared/data/usiigaci_phase_dev] [--images 6] [--repeats 1]

Fits the library default (``CellCompositor()``) on the first ``--images`` fields of the folder
(1022x1024 uint16 phase contrast, ~60 dense cells each) under four settings, interleaved, in one
process:

* ``fit, 1 thread`` / ``fit, 2 threads``: the process runs with that many torch threads and
  ``fit`` as it is (it runs its loop under one thread, :mod:`iaaa.threads`);
* ``unpinned, 1 thread`` / ``unpinned, 2 threads``: the same ``fit`` with its one-thread context
  replaced by a no-op, i.e. every op of the fit uses the process's threads, as before the fix.

Prints one row per setting: median seconds over ``--repeats`` and the ratio to
``fit, 1 thread`` of the same run. Nothing is asserted; results go to benchmarks/fit.md.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import iaaa.synthesis.compositor as compositor_module  # noqa: E402
from iaaa.data import read_label_folder  # noqa: E402
from iaaa.synthesis import CellCompositor  # noqa: E402


def _fit_seconds(samples: list, threads: int, pinned: bool) -> float:
    torch.set_num_threads(threads)
    original = compositor_module.torch_threads
    if not pinned:
        compositor_module.torch_threads = lambda n: contextlib.nullcontext()
    try:
        t0 = time.perf_counter()
        CellCompositor().fit(samples, progress=False)
        return time.perf_counter() - t0
    finally:
        compositor_module.torch_threads = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "usiigaci_phase_dev"))
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "images").is_dir():
        raise SystemExit(f"no data at {data} (expects images/ and masks/)")
    samples = read_label_folder(data / "images", data / "masks")[: args.images]
    settings = [("fit, 1 thread", 1, True), ("fit, 2 threads", 2, True), ("unpinned, 1 thread", 1, False), ("unpinned, 2 threads", 2, False)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in settings}
    for _ in range(args.repeats):
        for name, threads, pinned in settings:
            times[name].append(_fit_seconds(samples, threads, pinned))
    base = statistics.median(times["fit, 1 thread"])
    print(f"fit of CellCompositor() on {len(samples)} fields of {data.name} ({args.repeats} repeat(s), median seconds)")
    print(f"| {'setting':<22} | {'seconds':>8} | {'vs fit, 1 thread':>16} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 18}|")
    for name, _, _ in settings:
        m = statistics.median(times[name])
        print(f"| {name:<22} | {m:8.1f} | {m / base:16.2f} |")


if __name__ == "__main__":
    main()
