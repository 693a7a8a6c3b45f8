"""CPU milliseconds per ``CellCompositor.sample`` at the synthesis benchmark's workloads, for
paired before/after comparisons of two checkouts (run it alternately with ``PYTHONPATH`` set to
each; CPU time, because the wall clock of a shared machine measures its neighbours).

    PYTHONPATH=<before> python3 benchmarks/sample_cpu.py --size 512 --n 150
    PYTHONPATH=<after>  python3 benchmarks/sample_cpu.py --size 512 --n 150
    python3 benchmarks/sample_cpu.py --size 512 --n 100 --profile     # where the time goes

Sources, sizes and cell counts are those of ``benchmarks/synthesis.py`` (the library defaults
with ``size`` and ``count`` set); one torch thread.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthesis import CELLS, sources  # noqa: E402  (the same simulated sources)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, choices=sorted(CELLS), default=512)
    ap.add_argument("--n", type=int, default=100, help="samples timed (after 20 warm-up samples)")
    ap.add_argument("--profile", action="store_true", help="print the top functions (see --sort)")
    ap.add_argument("--sort", default="tottime", help="pstats sort key for --profile (tottime, cumulative)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from iaaa.synthesis import CellCompositor, CompositorConfig

    cells = CELLS[args.size]
    comp = CellCompositor(CompositorConfig().replace(size=(args.size, args.size), count=cells)).fit(sources(args.size, cells))
    for i in range(20):
        comp.sample(torch.Generator().manual_seed(i))
    prof = cProfile.Profile() if args.profile else None
    t0, pasted = time.process_time(), 0
    if prof:
        prof.enable()
    for i in range(args.n):
        s = comp.sample(torch.Generator().manual_seed(1000 + i))
        pasted += int(s.labels.max()) - int(s.meta.get("real_cells", 0))
    if prof:
        prof.disable()
    t = time.process_time() - t0
    import iaaa

    print(f"{args.size} px, {cells} cells: {1000 * t / args.n:.2f} CPU ms/image, {pasted / args.n:.1f} pasted cells/image ({Path(iaaa.__file__).parent.parent})")
    if prof:
        pstats.Stats(prof).sort_stats(args.sort).print_stats(45)


if __name__ == "__main__":
    main()
