"""How closely synthetic images reproduce how real cells touch, with contact-aware placement off
and on, and what it costs in sampling speed (one torch thread).

    python benchmarks/contacts.py [--data ../shared/data] [--images 8] [--samples 24] [--onto image]

For each data set (``usiigaci_phase_dev``: dense phase-contrast fields; ``dsb2018_fluo``:
fluorescence nuclei) the library default ``CellCompositor()`` is fitted once on the first
``--images`` images (``--onto background``: the paper's path, every cell pasted onto a cleaned
background); the same fitted pools are then sampled under three configs, interleaved:

* ``off``: the default (``placement.contacts="off"``);
* ``data``: ``contacts="data"``: objects placed against cells to reach the measured share;
* ``data+level``: ``contacts="data"``, ``level_match=True``, ``level_reject=4.0``.

Prints one row per data set and config: the real figures (touching share, contact pixels per
touching cell, mean cluster size, from :func:`iaaa.synthesis.contacts.measure_contacts` at reach
1), the synthetic ones over ``--samples`` images (seeds 0..n-1), the distance of the synthetic
touching share from the real one in points, and images/s with its ratio to ``off`` in the same
run. Nothing is asserted; results go to benchmarks/contacts.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iaaa.data import read_label_folder  # noqa: E402
from iaaa.synthesis import CellCompositor, CompositorConfig  # noqa: E402
from iaaa.synthesis.contacts import ContactStats, measure_contacts  # noqa: E402

ARMS = {
    "off": {},
    "data": {"contacts": "data"},
    "data+level": {"contacts": "data", "level_match": True, "level_reject": 4.0},
}


def _total(labels: list) -> ContactStats:
    out = ContactStats()
    for lab in labels:
        out = out + measure_contacts(lab)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--onto", choices=("image", "background"), default="image")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in ("usiigaci_phase_dev", "dsb2018_fluo"):
        root = Path(args.data) / name
        if not (root / "images").is_dir():
            print(f"{name}: not found at {root}, skipped")
            continue
        data = read_label_folder(root / "images", root / "masks")[: args.images]
        real = _total([s.labels for s in data])
        t = time.perf_counter()
        fitted = CellCompositor(CompositorConfig(onto=args.onto), seed=0).fit(data, progress=False)
        fit_s = time.perf_counter() - t
        comps = {}
        for arm, opts in ARMS.items():
            c = CellCompositor(CompositorConfig(onto=args.onto).replace(**opts), seed=0)
            c.pools = fitted.pools  # the measured pools do not depend on these placement options
            comps[arm] = c
        labels = {arm: [] for arm in ARMS}
        secs = {arm: 0.0 for arm in ARMS}
        for i in range(args.samples):
            for arm, c in comps.items():  # interleaved, so machine load hits every arm alike
                t = time.perf_counter()
                s = c.sample(torch.Generator().manual_seed(i))
                secs[arm] += time.perf_counter() - t
                labels[arm].append(s.labels)
        for arm in ARMS:
            syn = _total(labels[arm])
            rows.append((name, arm, real, syn, args.samples / secs[arm], secs["off"] / secs[arm], fit_s))
    print(f"onto={args.onto}, {args.images} images, {args.samples} samples per config, 1 thread")
    head = f"{'data':20} {'config':11} {'real share':>10} {'syn share':>9} {'diff pts':>8} {'real px':>7} {'syn px':>6} {'real clus':>9} {'syn clus':>8} {'img/s':>6} {'x off':>6}"
    print(head)
    for name, arm, real, syn, ips, ratio, fit_s in rows:
        print(
            f"{name:20} {arm:11} {real.touching_share:10.3f} {syn.touching_share:9.3f} {100 * (syn.touching_share - real.touching_share):+8.1f} "
            f"{real.mean_contact_length:7.1f} {syn.mean_contact_length:6.1f} {real.mean_cluster_size:9.2f} {syn.mean_cluster_size:8.2f} {ips:6.2f} {ratio:6.2f}"
        )


if __name__ == "__main__":
    main()
