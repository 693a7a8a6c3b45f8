"""Seconds ``CellCompositor().fit`` takes with 1 and 2 torch threads (issue 20, item 2).

    python benchmarks/fit.py [--data ../shared/data/usiigaci_phase_dev] [--images 16] [--simulated 100] [--repeats 1]
                             [--threads 1,2] [--workers 0,2]

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

Paired before/after on a shared machine, where one run's CPU time moves by 20-50 %:

    python benchmarks/fit.py --base <checkout before> --pairs 7 --images 4 --simulated 6

runs the fit (one thread) in fresh processes alternately with ``--base`` and with this checkout,
``--pairs`` times each, and prints each workload's user CPU seconds per run, the median of the
per-pair ratios (this / base) and the ratio of the minima.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def _fit(samples: list, threads: int, workers: int = 0) -> tuple[float, float]:
    import torch

    from iaaa.synthesis import CellCompositor

    torch.set_num_threads(threads)
    c0, t0 = os.times(), time.perf_counter()
    CellCompositor().fit(samples, progress=False, **({"workers": workers} if workers else {}))
    wall, c1 = time.perf_counter() - t0, os.times()
    # Worker processes are reaped when the fit ends, so their CPU time is in the children's.
    return wall, (c1.user - c0.user) + (c1.children_user - c0.children_user)


def _paired(args: argparse.Namespace, here: Path) -> None:
    """Alternate fresh processes of this script on ``--base`` and on this checkout."""
    import json
    import subprocess

    runs: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
    for _ in range(args.pairs):
        for tag, repo in (("base", Path(args.base).resolve()), ("this", here)):
            cmd = [sys.executable, __file__, "--repo", str(repo), "--data", args.data, "--images", str(args.images),
                   "--simulated", str(args.simulated), "--threads", "1", "--emit-json"]
            env = {**os.environ, "PYTHONPATH": str(repo)}
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            for name, user in json.loads(out.strip().splitlines()[-1]).items():
                runs[tag].setdefault(name, []).append(user)
                print(f"# {tag} {name}: user CPU {user:.2f} s", flush=True)
    print(f"paired fit, one thread, {args.pairs} pairs: base {Path(args.base).resolve()} vs this {here}")
    print("| workload | base user CPU s | this user CPU s | median of pair ratios | min / min |")
    print("|---|---|---|---:|---:|")
    for name, base in runs["base"].items():
        this = runs["this"][name]
        ratio = statistics.median(t / b for t, b in zip(this, base))
        print(f"| {name} | {' '.join(f'{b:.2f}' for b in base)} | {' '.join(f'{t:.2f}' for t in this)} | {ratio:.3f} | {min(this) / min(base):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--repo", default=str(here), help="checkout whose iaaa is measured")
    ap.add_argument("--data", default=str(here / ".." / "shared" / "data" / "usiigaci_phase_dev"))
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--simulated", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    ap.add_argument("--workers", default="0", help="comma list of fit(workers=...) settings (processes; 0: serial)")
    ap.add_argument("--base", help="another checkout: paired before/after runs (see the module docs)")
    ap.add_argument("--pairs", type=int, default=5, help="with --base: runs per checkout")
    ap.add_argument("--emit-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.base:
        _paired(args, here)
        return
    thread_counts = [int(t) for t in args.threads.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    settings = [(t, w) for t in thread_counts for w in worker_counts]
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
    times: dict[tuple[str, tuple[int, int]], list[tuple[float, float]]] = {(w, st): [] for w in workloads for st in settings}
    for _ in range(args.repeats):
        for name, samples in workloads.items():
            for st in settings:
                times[name, st].append(_fit(samples, *st))
                # Each measurement as it comes, so a long run that is cut short still tells something.
                print(f"# {name}, {st[0]} thread(s), {st[1]} worker(s): wall {times[name, st][-1][0]:.1f} s, user CPU {times[name, st][-1][1]:.1f} s", flush=True)
    if args.emit_json:
        import json

        print(json.dumps({name: statistics.median(u for _, u in times[name, settings[0]]) for name in workloads}))
        return
    print(f"fit of CellCompositor() with {iaaa.__file__} ({args.repeats} repeat(s), medians)")
    print(f"| {'workload':<22} | threads | workers | wall s | user CPU s | wall vs first row |")
    print(f"|{'-' * 24}|---------|---------|--------|------------|-------------------|")
    for name in workloads:
        base = statistics.median(w for w, _ in times[name, settings[0]])
        for st in settings:
            wall = statistics.median(w for w, _ in times[name, st])
            user = statistics.median(u for _, u in times[name, st])
            print(f"| {name:<22} | {st[0]:>7} | {st[1]:>7} | {wall:6.1f} | {user:10.1f} | {wall / base:17.2f} |")


if __name__ == "__main__":
    main()
