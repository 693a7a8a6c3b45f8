"""Synthesis speed at equal pasted cells: previous defaults vs mask-level on cleaned backgrounds vs
the new defaults (onto the real image), on benchmarks/synthesis.py's 512 px sources, one process,
one thread, median of 3 x 40 images. Run from the repository root:

    PYTHONPATH=. python3 benchmarks/experiments/masklevel_speed.py
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthesis import sources  # noqa: E402

from iaaa.synthesis import CellCompositor, CompositorConfig  # noqa: E402

torch.set_num_threads(1)
src = sources(512, 20)
cfgs = {
    "previous defaults": dict(grouping="box", background_method="bilinear", rim=False, onto="background", group_by=None, count_cap=False),
    "mask, onto background": dict(onto="background"),
    "new defaults (onto image)": dict(),
}
comps = {k: CellCompositor(CompositorConfig().replace(size=(512, 512), count=20, **kw)).fit(src) for k, kw in cfgs.items()}
rates: dict[str, list[float]] = {k: [] for k in cfgs}
pasted: dict[str, list[int]] = {k: [] for k in cfgs}
for rep in range(3):
    for k, c in comps.items():
        g = torch.Generator().manual_seed(rep)
        t = time.perf_counter()
        for _ in range(40):
            x = c.sample(g)
            pasted[k].append(int(x.labels.max()) - x.meta.get("real_cells", 0))
        rates[k].append(40 / (time.perf_counter() - t))
for k in cfgs:
    print(f"{k:28s} {statistics.median(rates[k]):6.1f} images/s  pasted cells/image {statistics.mean(pasted[k]):.1f}")
