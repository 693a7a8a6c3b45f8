"""What a fitted ``CellCompositor()`` keeps in memory, by part, per pixel of the data it saw.

    python benchmarks/pool_memory.py [--base <another checkout>] [--data-root ../shared/data] [--simulated 8] [--large 2048]

The pools live as long as the compositor: in the training process, and in every DataLoader
worker started by ``spawn`` (macOS, Windows) or touched after a ``fork``. Workloads, each fitted
with the library defaults in a fresh process: the 16 usiigaci_phase_dev fields (uint16), the 30
dsb2018_fluo images (uint8; skipped with a line when the shared data is absent) and
``--simulated`` 1024 px fluorescence images of the project's simulator (uint8, 40-80 cells) and
one ``--large`` px RGB brightfield image of it (400 cells: where the fit's full-size temporaries,
not the pools, set the memory a machine needs).

Prints, per workload, the bytes held by each part (every tensor and array reachable from the
fitted pools, each storage counted once), their sum, bytes per pixel of the fitted images, and
the fit's peak resident memory above the process's resident memory before it (``ru_maxrss``:
what the machine must have free). ``--base``: the same in a fresh process on that checkout,
and the ratio. Nothing is asserted; results go to benchmarks/fit.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _held(obj, path: str = "pools", seen: dict | None = None, depth: int = 0) -> dict:
    """``{storage key: (bytes, part)}`` of every tensor / array reachable from ``obj``."""
    import numpy as np
    import torch

    seen = {} if seen is None else seen
    if depth > 8:
        return seen
    if isinstance(obj, torch.Tensor):
        st = obj.untyped_storage()
        seen.setdefault(("t", st.data_ptr()), (st.nbytes(), f"{path} {obj.dtype}".replace("torch.", "")))
    elif isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        seen.setdefault(("n", id(base)), (getattr(base, "nbytes", obj.nbytes), f"{path} {obj.dtype}"))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _held(v, path, seen, depth + 1)
    elif isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        for v in obj:
            _held(v, path, seen, depth + 1)
    elif hasattr(obj, "_fields"):  # NamedTuple: its field names say which part
        for k in obj._fields:
            _held(getattr(obj, k), f"{path}.{k}", seen, depth + 1)
    elif hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            _held(v, f"{path}.{k}", seen, depth + 1)
    return seen


def _measure(workload: str, data_root: Path, simulated: int, large: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from iaaa import CellCompositor
    from iaaa.data import read_label_folder
    from iaaa.datasets import simulate_cells

    if workload == "simulated":
        samples = simulate_cells(simulated, seed=0, size=(1024, 1024), cells=(40, 80))
    elif workload == "large":
        samples = simulate_cells(1, seed=5, size=(large, large), cells=(400, 400), mode="brightfield")
    else:
        folder = data_root / workload
        samples = read_label_folder(folder / "images", folder / "masks")
    pixels = sum(s.labels.numel() for s in samples)
    before = _current_rss_mb()
    comp = CellCompositor().fit(samples, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parts: dict[str, int] = collections.Counter()
    for nbytes, part in _held(comp.pools).values():
        parts[re.sub(r"\s+", " ", part)] += nbytes
    return {"images": len(samples), "pixels": pixels, "parts": dict(parts), "fit_peak_mb": peak - before}


def _run(repo: Path, args: argparse.Namespace, workload: str) -> dict:
    cmd = [sys.executable, __file__, "--emit", workload, "--data-root", str(args.data_root), "--simulated", str(args.simulated), "--large", str(args.large)]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="another checkout, measured the same way beside this one")
    ap.add_argument("--data-root", type=Path, default=here.parent / "shared" / "data")
    ap.add_argument("--simulated", type=int, default=8)
    ap.add_argument("--large", type=int, default=2048, help="side of the one large RGB image (0: skip)")
    ap.add_argument("--emit", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.emit:
        print(json.dumps(_measure(args.emit, args.data_root, args.simulated, args.large)))
        return
    workloads = []
    for name in ("usiigaci_phase_dev", "dsb2018_fluo"):
        if (args.data_root / name / "images").is_dir():
            workloads.append(name)
        else:
            print(f"# skipped {name}: no {args.data_root / name}/images (the shared data is absent)")
    if args.simulated > 0:
        workloads.append("simulated")
    if args.large > 0:
        workloads.append("large")
    sides = [("this", here)] + ([("base", Path(args.base).resolve())] if args.base else [])
    print(f"# fitted CellCompositor() pools; this = {here}" + (f", base = {sides[1][1]}" if args.base else ""))
    for workload in workloads:
        got = {tag: _run(repo, args, workload) for tag, repo in sides}
        this = got["this"]
        mpx = this["pixels"] / 1e6
        print(f"\n{workload}: {this['images']} images, {mpx:.1f} Mpx")
        parts = sorted(set().union(*(g["parts"] for g in got.values())), key=lambda p: -max(g["parts"].get(p, 0) for g in got.values()))
        head = "| part | " + " | ".join(f"{tag} MB" for tag, _ in sides) + " |"
        print(head + "\n|" + "---|" * (1 + len(sides)))
        small = [p for p in parts if max(g["parts"].get(p, 0) for g in got.values()) < 2**20 / 20]
        for part in parts:
            if part not in small:
                print(f"| {part} | " + " | ".join(f"{got[tag]['parts'].get(part, 0) / 2**20:.1f}" for tag, _ in sides) + " |")
        if small:
            print(f"| {len(small)} parts under 0.05 MB (indices, boxes, statistics) | " + " | ".join(f"{sum(got[tag]['parts'].get(p, 0) for p in small) / 2**20:.2f}" for tag, _ in sides) + " |")
        total = {tag: sum(g["parts"].values()) for tag, g in got.items()}
        print("| **all** | " + " | ".join(f"**{total[tag] / 2**20:.1f}**" for tag, _ in sides) + " |")
        print("| bytes per data pixel | " + " | ".join(f"{total[tag] / got[tag]['pixels']:.1f}" for tag, _ in sides) + " |")
        print("| fit peak RSS above start, MB | " + " | ".join(f"{got[tag]['fit_peak_mb']:.0f}" for tag, _ in sides) + " |")
        if args.base:
            print(f"this / base, all held: {total['this'] / total['base']:.3f}")


if __name__ == "__main__":
    main()
