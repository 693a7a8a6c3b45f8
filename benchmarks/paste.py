"""Speed of the online transform: PasteCells calls per second on 256x256 crops with 3 pasted
objects, one torch thread, beside the Simple Copy-Paste recipe.

The peer is :func:`iaaa.judge.naive.copy_paste`, the judge's faithful re-implementation of the
core of torchvision's detection-reference SimpleCopyPaste (scale jitter, mirror, shift of a
source crop, a random half of its cells pasted with hard edges, occlusion of the destination's
labels), called on one destination / source pair per call as a DataLoader worker would.

Data: 256x256 crops of the real DSB 2018 fluorescence images (../shared/data/dsb2018_fluo), or
the simulator when they are absent. Usage::

    PYTHONPATH=$PWD python3 benchmarks/paste.py [--calls 300] [--repeats 3] [--cpu-time] [--fields]

``--fields`` adds a second table: whole 1022 x 1024 phase-contrast fields of
../shared/data/usiigaci_phase_dev (uint16, 38-114 cells each), the compositor fitted on them, and
``PasteCells`` at two :class:`~iaaa.PasteConfig` settings: 1-3 objects over the field's cells
(Simple Copy-Paste's way) and the data's count of objects into the field's free space
(``paste_count="data", over_cells=False``, as ``iaaa synth`` fills a field), beside the same peer
on the same fields. The count decides the cost there: each placed object is described, scored
against every candidate and blended.

``--memory CALLS`` prints only how much resident memory the process gains over CALLS calls on
the whole fields (what the caches kept across calls hold, per DataLoader worker).

``--cpu-time`` counts calls per second of this process's CPU time instead of wall time: on a
shared virtual machine the wall clock also measures the neighbours (the peer's own rate moved
by 25 % between back-to-back runs here), CPU time much less.

``--baseline DIR`` compares this checkout with another one (e.g. a ``git worktree`` of the base
commit; ``--options KEY=VALUE ...`` sets compositor options on this checkout's side only, so a
worktree of the same commit measures an option against the defaults; ``--both KEY=VALUE ...`` on
both sides, for a change to a path the defaults do not take) in one process, call by call: the other checkout's ``iaaa`` is imported under another
name (``benchmarks/baseline.py``), both compositors
are fitted on the same data, and the two transforms are called alternately with the same
generators, so they do the same work in the same seconds and their CPU-time ratio holds on a
machine whose speed moves by the minute (separate runs moved by 2x here). It also counts the
calls whose outputs differ.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from iaaa import CellCompositor, CompositorConfig, PasteCells  # noqa: E402
from iaaa.dtypes import to_float  # noqa: E402
from iaaa.judge.naive import copy_paste  # noqa: E402
from iaaa.structures import AnnotatedImage  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dsb2018_fluo"
FIELDS = DATA.parent / "usiigaci_phase_dev"
SIZE = 256


def crops() -> tuple[list[AnnotatedImage], str]:
    if (DATA / "images").is_dir():
        from iaaa.data import read_label_folder

        samples = read_label_folder(DATA / "images", DATA / "masks")
        out = []
        for s in samples:
            if min(s.size) >= SIZE and s.num_instances:
                img = s.image[:1, :SIZE, :SIZE]
                lab = s.labels[:SIZE, :SIZE]
                out.append(AnnotatedImage(img, lab, None, s.name).relabeled())
        return out, f"dsb2018_fluo ({len(out)} crops of {SIZE}x{SIZE}, first channel)"
    from iaaa.datasets import simulate_cells

    return simulate_cells(8, seed=0, size=(SIZE, SIZE), dtype=torch.uint8), f"simulator (8 images {SIZE}x{SIZE})"


def fields() -> list[AnnotatedImage]:
    from iaaa.data import read_label_folder

    return read_label_folder(FIELDS / "images", FIELDS / "masks")


def rate(fn, n: int, repeats: int, clock=time.perf_counter) -> float:
    fn(0)
    best = float("inf")
    for r in range(repeats):
        t0 = clock()
        for i in range(n):
            fn(r * n + i)
        best = min(best, clock() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-time", action="store_true", help="calls per CPU second of this process (see module docs)")
    ap.add_argument("--fields", action="store_true", help="also time whole usiigaci fields (see module docs)")
    ap.add_argument("--field-calls", type=int, default=20, help="calls per repeat on whole fields (default: %(default)s)")
    ap.add_argument("--baseline", default=None, help="another checkout to compare with, call by call (see module docs)")
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="with --baseline: compositor options of this checkout's side")
    ap.add_argument("--both", nargs="+", default=[], metavar="KEY=VALUE", help="with --baseline: compositor options of both sides")
    ap.add_argument("--memory", type=int, default=0, metavar="CALLS", help="only: the process's growth over CALLS whole-field calls (see module docs)")
    args = ap.parse_args()
    if args.memory:
        memory(args.memory)
        return
    if args.baseline:
        baseline(args)
        return
    clock = time.process_time if args.cpu_time else time.perf_counter
    samples, what = crops()
    import iaaa

    unit = "CPU" if args.cpu_time else "wall"
    print(f"data: {what}; torch threads {torch.get_num_threads()}; {args.calls} calls x {args.repeats} repeats (best, {unit} time); library {Path(iaaa.__file__).parent}")
    rows = []
    variants = (
        ("PasteCells (library defaults)", None, {}),
        ("PasteCells (identity policy)", "identity", {}),
        ("PasteCells (identity policy, rim=False)", "identity", {"rim": False}),
    )
    for name, policy, options in variants:
        rows.append(paste_row(name, samples, CompositorConfig().replace(**options), policy, 3, args, clock))
    rows.append(peer_row(samples, args, clock))
    table(rows)
    if not args.fields:
        return
    if not (FIELDS / "images").is_dir():
        print(f"--fields: skipped, {FIELDS} is absent")
        return
    whole = fields()
    print(f"\nwhole fields: {FIELDS.name} ({len(whole)} fields {whole[0].size[0]}x{whole[0].size[1]}, {whole[0].image.dtype}, "
          f"{min(s.num_instances for s in whole)}-{max(s.num_instances for s in whole)} cells); {args.field_calls} calls x {args.repeats} repeats")
    rows = [
        paste_row("PasteCells, 1-3 objects over cells", whole, CompositorConfig().replace(paste_count=(1, 3), over_cells=True), None, None, args, clock, calls=args.field_calls),
        paste_row("PasteCells, data count, free space", whole, CompositorConfig().replace(paste_count="data", over_cells=False), None, None, args, clock, calls=args.field_calls),
        peer_row(whole, args, clock, calls=args.field_calls),
    ]
    table(rows)


def memory(calls: int) -> None:
    """Resident memory the process gains over ``calls`` calls of ``PasteCells(p=1)`` with the
    data's count on the whole usiigaci fields (Linux ``/proc/self/statm``): what the caches
    kept across calls hold, per DataLoader worker."""
    if not (FIELDS / "images").is_dir():
        print(f"--memory: skipped, {FIELDS} is absent")
        return
    import iaaa

    whole = fields()
    t = PasteCells(CellCompositor(CompositorConfig()).fit(whole, progress=False), p=1.0)

    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

    start = rss_mb()
    print(f"library {Path(iaaa.__file__).parent}; {FIELDS.name}, {len(whole)} fields, PasteCells(p=1), data count")
    for i in range(calls):
        t.apply(whole[i % len(whole)], torch.Generator().manual_seed(i))
        if (i + 1) % 50 == 0 or i + 1 == calls:
            print(f"{i + 1:5d} calls: resident memory +{rss_mb() - start:.0f} MB")


def paste_row(name: str, samples: list[AnnotatedImage], config: CompositorConfig, policy: str | None, n: int | None,
              args: argparse.Namespace, clock, calls: int | None = None) -> tuple[str, float, float]:
    """``(name, calls/s, objects placed per call)`` of ``PasteCells(p=1, n)`` on ``samples``."""
    comp = CellCompositor(config, policy=policy).fit(samples, progress=False)
    t = PasteCells(comp, p=1.0, n=n)
    placed: list[int] = []

    def call(i: int) -> None:
        out = t.apply(samples[i % len(samples)], torch.Generator().manual_seed(i))
        placed.append(len(out.meta["paste"]["objects"]))

    return name, rate(call, calls or args.calls, args.repeats, clock), sum(placed) / len(placed)


def peer_row(samples: list[AnnotatedImage], args: argparse.Namespace, clock, calls: int | None = None) -> tuple[str, float, float]:
    """The peer on float images in [0, 1], as the judge feeds it."""
    flo = [(to_float(s.image)[None], s.labels[None]) for s in samples]

    def peer(i: int) -> None:
        d, s = flo[i % len(flo)], flo[(i + 1) % len(flo)]
        copy_paste(d[0], d[1], s[0], s[1], torch.Generator().manual_seed(i))

    return "naive copy_paste (SimpleCopyPaste recipe)", rate(peer, calls or args.calls, args.repeats, clock), float("nan")


def table(rows: list[tuple[str, float, float]]) -> None:
    ref = rows[-1][1]
    print(f"{'transform':44s} {'calls/s':>9s} {'x peer':>7s} {'objects placed/call':>20s}")
    for name, r, k in rows:
        print(f"{name:44s} {r:9.1f} {r / ref:7.2f} {k:20.2f}")


def paired_row(name: str, samples: list[AnnotatedImage], config: dict, n: int | None, base, calls: int, options: dict | None = None) -> tuple:
    """``PasteCells(p=1, n)`` of this checkout (``config`` plus ``options``) and of ``base``
    (``config``), same data, called alternately with the same generators: ``(name, base
    calls/CPU-s, calls/CPU-s, ratio, "calls whose label maps / images differ (largest pixel
    difference)")``."""
    import iaaa

    libs = {"base": base, "this": iaaa}
    data = {"base": [base.structures.AnnotatedImage(s.image, s.labels, s.class_ids, s.name) for s in samples], "this": samples}
    configs = {"base": config, "this": {**config, **(options or {})}}
    t = {k: lib.PasteCells(lib.CellCompositor(lib.CompositorConfig().replace(**configs[k])).fit(data[k], progress=False), p=1.0, n=n) for k, lib in libs.items()}
    spent = {"base": 0.0, "this": 0.0}
    differ, labels_differ, most = 0, 0, 0.0
    for i in range(-1, calls):  # call -1 warms both up, untimed
        out = {}
        for k in (("base", "this") if i % 2 == 0 else ("this", "base")):
            g = torch.Generator().manual_seed(max(i, 0))
            t0 = time.process_time()
            out[k] = t[k].apply(data[k][max(i, 0) % len(samples)], g)
            if i >= 0:
                spent[k] += time.process_time() - t0
        labels_differ += not torch.equal(out["base"].labels, out["this"].labels)
        gap = float((out["base"].image.double() - out["this"].image.double()).abs().max()) if out["base"].image.shape == out["this"].image.shape else float("inf")
        differ += gap > 0
        most = max(most, gap)
    return name, calls / spent["base"], calls / spent["this"], spent["base"] / spent["this"], f"{labels_differ} / {differ} (max {most:g})"


def baseline(args: argparse.Namespace) -> None:
    from baseline import load_baseline  # benchmarks/baseline.py, beside this script

    from iaaa.commands.judge import parse_pairs

    base = load_baseline(args.baseline)
    options = parse_pairs(args.options, "--options") if args.options else {}
    shared = parse_pairs(args.both, "--both") if args.both else {}
    samples, what = crops()
    print(f"data: {what}; torch threads {torch.get_num_threads()}; baseline {Path(args.baseline).resolve()} (as iaaa_base), "
          f"calls alternated, CPU time; both sides' options {shared or 'none'}; this side's options {options or 'none'}")
    rows = [paired_row(f"PasteCells (library defaults), 256 px crops, n=3, {args.calls} calls", samples, shared, 3, base, args.calls, options)]
    if args.fields and (FIELDS / "images").is_dir():
        whole = fields()
        rows.append(paired_row(f"PasteCells, data count, free space, whole fields, {args.field_calls} calls", whole,
                               {"paste_count": "data", "over_cells": False, **shared}, None, base, args.field_calls, options))
    print(f"{'workload':70s} {'base calls/s':>12s} {'calls/s':>8s} {'speed-up':>8s}  calls differing: labels / images (max)")
    for name, rb, rt, ratio, differ in rows:
        print(f"{name:70s} {rb:12.1f} {rt:8.1f} {ratio:8.2f}  {differ}")


if __name__ == "__main__":
    main()
