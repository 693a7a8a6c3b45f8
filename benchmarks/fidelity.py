"""Fidelity benchmark: how close IAAA synthetic images are to real ones, against baselines.

On the real DSB 2018 fluorescence subset (``../shared/data/dsb2018_fluo``), each split divides
the images into a *source* half A and a held-out *reference* half B, stratified by image size
(the sizes stand for the different labs and magnifications, so both halves see all of them).
Every candidate set is built from A only and compared with B:

    a  real      A itself                                  (the floor: real vs real)
    b  iaaa      CellCompositor(group_by="size").fit(A), --factor (3) samples per image of A
    b1 iaaa-id   as b with policy="identity" (placement and blending only, no augmentation)
    b0 iaaa-pool CellCompositor().fit(A) (one pool for all sizes), as many samples
    bs iaaa-src  as b with layout="source", count="background", collision="mask" (cells where
                 and as many as the background's own image had, packed by masks not boxes)
    c  naive     each image of A with as many random objects of A as it holds pasted at
                 uniformly random positions with hard edges (mask copy, no blending, no
                 location search); its SCO/MCO levels use only objects holding a pasted cell
    d  flips     each image of A flipped / rotated by a multiple of 90 degrees at random

and scored with the offline metrics of ``iaaa.metrics`` (KID on PyramidStatsFeatures and SWD)
at the SCO, MCO and 128 px tile levels. Numbers are mean ± sd over the splits.

Run from the repository root:

    python benchmarks/fidelity.py --data ../shared/data/dsb2018_fluo --splits 3
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from iaaa.metrics import evaluate_fidelity  # noqa: E402
from iaaa.structures import AnnotatedImage, CellObject  # noqa: E402

CASES = {
    "a": "real (A vs B: floor)",
    "b": "IAAA (group_by=size)",
    "b1": "IAAA, identity policy",
    "b0": "IAAA (one pool)",
    "bs": "IAAA (size) + source layout/count, mask collisions",
    "c": "naive hard paste",
    "d": "flips / rot90",
}
LEVELS = ("sco", "mco", "image")


def stratified_split(samples: list[AnnotatedImage], seed: int) -> tuple[list[AnnotatedImage], list[AnnotatedImage]]:
    """Halves A and B: within each image size, a seeded permutation dealt alternately, with the
    odd one out of each group going to A and B in turn so the halves stay balanced."""
    g = torch.Generator().manual_seed(seed)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.size, []).append(i)
    a, b = [], []
    flip = False
    for key in sorted(groups):
        idx = [groups[key][j] for j in torch.randperm(len(groups[key]), generator=g).tolist()]
        first, second = (b, a) if flip else (a, b)
        first.extend(idx[0::2])
        second.extend(idx[1::2])
        if len(idx) % 2:
            flip = not flip
    return [samples[i] for i in sorted(a)], [samples[i] for i in sorted(b)]


def naive_paste(samples: list[AnnotatedImage], objects: list[CellObject], seed: int) -> list[AnnotatedImage]:
    """The copy-paste baseline: onto each original image, paste as many objects as were cut from
    that image (so about half of its objects are new), drawn from the whole pool of A, at
    uniformly random positions; object pixels replace the image where the object's mask is set
    (a hard edge, no blending, no location search) and its cells replace any labels underneath.
    The pasted cells' label values are kept in ``meta["pasted_ids"]``. Loops run over objects,
    never pixels."""
    g = torch.Generator().manual_seed(seed)
    per_source: dict[str, int] = {}
    for o in objects:
        per_source[o.source] = per_source.get(o.source, 0) + 1
    out = []
    for s in samples:
        img, lab = s.image.clone(), s.labels.clone()
        h, w = lab.shape
        next_id = int(lab.max()) + 1
        pasted: list[int] = []
        for _ in range(max(1, per_source.get(s.name, 0))):
            o = objects[int(torch.randint(len(objects), (1,), generator=g))]
            oh, ow = o.size
            if oh > h or ow > w:
                continue
            y = int(torch.randint(h - oh + 1, (1,), generator=g))
            x = int(torch.randint(w - ow + 1, (1,), generator=g))
            m = o.labels > 0
            img[:, y : y + oh, x : x + ow] = torch.where(m, o.image.to(img.dtype), img[:, y : y + oh, x : x + ow])
            lab[y : y + oh, x : x + ow] = torch.where(m, o.labels + (next_id - 1), lab[y : y + oh, x : x + ow])
            pasted.extend(range(next_id, next_id + o.num_cells))
            next_id += o.num_cells
        out.append(AnnotatedImage(img, lab, name=f"{s.name}-paste", meta={"pasted_ids": pasted}))
    return out


def pasted_objects(samples: list[AnnotatedImage]) -> list[CellObject]:
    """Objects of the naive images that hold at least one pasted cell: the baseline's SCO/MCO
    levels judge what it added, not the untouched original cells around it."""
    from iaaa.synthesis.objects import ObjectConfig, extract_objects

    keep = {s.name: set(s.meta.get("pasted_ids", ())) for s in samples}
    return [o for o in extract_objects(samples, ObjectConfig(grouping="box")) if keep.get(o.source, set()) & set(o.source_ids)]


def flips(samples: list[AnnotatedImage], seed: int) -> list[AnnotatedImage]:
    """Each image (and its labels) flipped left-right with probability 1/2, then rotated by a
    random multiple of 90 degrees."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in samples:
        img, lab = s.image, s.labels
        if bool(torch.rand(1, generator=g) < 0.5):
            img, lab = img.flip(-1), lab.flip(-1)
        k = int(torch.randint(4, (1,), generator=g))
        out.append(AnnotatedImage(img.rot90(k, (-2, -1)).contiguous(), lab.rot90(k, (-2, -1)).contiguous(), name=f"{s.name}-flip"))
    return out


def iaaa_synthetic(samples: list[AnnotatedImage], seed: int, factor: int, **kwargs: Any) -> list[AnnotatedImage]:
    """``factor`` synthetic images per source image. The compositor draws each image's
    background (and so its size) at random; with one draw per source image the mix of sizes -
    which here means labs and magnifications, and at the tile level a 520x696 image weighs 20
    tiles against 4 - would differ from A's by chance alone and dominate the tile numbers."""
    from iaaa.synthesis import CellCompositor, CompositorConfig

    comp = CellCompositor(CompositorConfig().replace(**kwargs), seed=seed).fit(samples, progress=False)
    g = torch.Generator().manual_seed(seed)
    return [comp.sample(g) for _ in range(factor * len(samples))]


def build_case(case: str, a: list[AnnotatedImage], seed: int, factor: int = 1, **compositor: Any) -> tuple[list[AnnotatedImage], list[CellObject] | None]:
    """The candidate images of ``case`` and, where only part of them is new, the objects to judge
    at the SCO/MCO levels (``None``: every object extracted from the images). ``compositor``:
    extra ``CellCompositor`` options for the IAAA cases (e.g. ``background_patch=1``)."""
    if case == "a":
        return a, None
    if case == "b":
        return iaaa_synthetic(a, seed, factor, group_by="size", **compositor), None
    if case == "b1":
        return iaaa_synthetic(a, seed, factor, group_by="size", policy="identity", **compositor), None
    if case == "b0":
        return iaaa_synthetic(a, seed, factor, **compositor), None
    if case == "bs":
        opts = {"layout": "source", "count": "background", "collision": "mask", **compositor}
        return iaaa_synthetic(a, seed, factor, group_by="size", **opts), None
    if case == "c":
        from iaaa.synthesis.objects import ObjectConfig, extract_objects

        images = naive_paste(a, extract_objects(a, ObjectConfig(grouping="box")), seed)
        return images, pasted_objects(images)
    if case == "d":
        return flips(a, seed), None
    raise ValueError(f"unknown case {case!r}")


def fmt(values: list[float], digits: int, signed: bool = False) -> str:
    if not values:
        return "-"
    m = float(np.mean(values))
    head = f"{m:+.{digits}f}" if signed else f"{m:.{digits}f}"
    return f"{head} ± {float(np.std(values, ddof=1)):.{digits}f}" if len(values) > 1 else head


def _option(text: str) -> tuple[str, Any]:
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"--compositor: expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def _git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dsb2018_fluo"), help="folder with images/ and masks/")
    p.add_argument("--splits", type=int, default=3, help="number of random A/B splits (seeds 0..n-1)")
    p.add_argument("--cases", default=",".join(CASES), help="comma list of " + ", ".join(CASES))
    p.add_argument("--subsets", type=int, default=100, help="KID subsets per level")
    p.add_argument("--factor", type=int, default=3, help="IAAA images per source image (see iaaa_synthetic)")
    p.add_argument("--background-patch", type=int, help="CellCompositor background_patch for the IAAA cases (default: the compositor's; 1 = per-pixel fill)")
    p.add_argument("--compositor", action="append", default=[], metavar="KEY=VALUE",
                   help="extra CellCompositor option for the IAAA cases, e.g. layout=source or count=background (repeatable; values parsed as Python literals where possible)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core box)")
    p.add_argument("--json", help="write every number (per split) here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    compositor_options = dict(_option(o) for o in args.compositor)
    data = Path(args.data)
    if not (data / "images").is_dir() or not (data / "masks").is_dir():
        print(f"data not found: {data} needs images/ and masks/ (the DSB 2018 fluorescence subset in ../shared/data)", file=sys.stderr)
        return 2
    from iaaa.data import read_label_folder

    samples = read_label_folder(data / "images", data / "masks")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {c: {lv: [] for lv in LEVELS} for c in cases}
    timings: dict[str, list[float]] = {c: [] for c in cases}
    skipped: dict[str, str] = {}
    for split in range(args.splits):
        a, b = stratified_split(samples, split)
        for case in cases:
            if case in skipped:
                continue
            t0 = time.perf_counter()
            try:
                extra = {} if args.background_patch is None else {"background_patch": args.background_patch}
                extra.update(compositor_options)
                cand, cand_objects = build_case(case, a, split, args.factor, **extra)
            except ImportError as exc:
                skipped[case] = f"not run: {exc}"
                continue
            t_build = time.perf_counter() - t0
            rep = evaluate_fidelity(b, cand, levels=LEVELS, metrics=("kid", "swd"), num_subsets=args.subsets, seed=split, synthetic_objects=cand_objects)
            timings[case].append(time.perf_counter() - t0)
            for row in rep.levels:
                results[case][row.level].append(row.to_dict())
            short = "  ".join(f"{r.level} KID {r.kid.mean:.3f} SWD {r.swd.mean:.3f}" for r in rep.levels if r.kid is not None)
            print(f"split {split} {case:>2} ({len(cand)} images, built in {t_build:.1f}s): {short}", flush=True)

    head = "| case | " + " | ".join(f"{lv.upper() if lv != 'image' else 'tiles'} {m}" for lv in LEVELS for m in ("KID", "SWD")) + " | n (sco/mco/tiles) | s/split |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for case in cases:
        if case in skipped:
            lines.append(f"| {case} {CASES[case]} | " + " | ".join(["-"] * 6) + f" | {skipped[case]} | - |")
            continue
        cells = []
        for lv in LEVELS:
            rows = [r for r in results[case][lv] if r["kid"] is not None]
            cells.append(fmt([r["kid"]["mean"] for r in rows], 3))
            cells.append(fmt([r["swd"]["mean"] for r in rows], 3))
        ns = "/".join(str(int(np.mean([r["n_synthetic"] for r in results[case][lv]]))) if results[case][lv] else "-" for lv in LEVELS)
        lines.append(f"| {case} {CASES[case]} | " + " | ".join(cells) + f" | {ns} | {np.mean(timings[case]):.1f} |")
    # Split composition moves every case together (all are built from A and judged against B),
    # so the paired difference to the floor of the same split is the informative number.
    if "a" in cases and "a" not in skipped:
        head2 = "| case − floor (same split) | " + " | ".join(f"{lv.upper() if lv != 'image' else 'tiles'} {m}" for lv in LEVELS for m in ("KID", "SWD")) + " |"
        lines += ["", head2, "|" + "---|" * (head2.count("|") - 1)]
        for case in cases:
            if case == "a" or case in skipped:
                continue
            cells = []
            for lv in LEVELS:
                for m in ("kid", "swd"):
                    pairs = [(r[m]["mean"], f[m]["mean"]) for r, f in zip(results[case][lv], results["a"][lv]) if r[m] and f[m]]
                    diffs = [x - y for x, y in pairs]
                    cell = fmt(diffs, 3, signed=True)
                    if "c" in cases and case != "c" and "c" not in skipped:
                        naive = [r[m]["mean"] for r in results["c"][lv] if r[m]]
                        mine = [r[m]["mean"] for r in results[case][lv] if r[m]]
                        cell += f" ({sum(x < y for x, y in zip(mine, naive))}/{len(mine)})"
                    cells.append(cell)
            lines.append(f"| {case} {CASES[case]} | " + " | ".join(cells) + " |")
    ref = "/".join(str(int(np.mean([r["n_real"] for r in results[cases[0]][lv]]))) if results[cases[0]][lv] else "-" for lv in LEVELS)
    table = "\n".join(lines)
    print()
    print(table)
    print(f"\nreference half B: {ref} samples (sco/mco/tiles), mean over splits; values: mean ± sd over {args.splits} splits;"
          " (k/n): splits in which the case is closer to B than the naive paste")
    if args.json:
        doc = {
            "command": " ".join(["python", "benchmarks/fidelity.py", *(argv if argv is not None else sys.argv[1:])]),
            "data": str(data),
            "splits": args.splits,
            "cases": {c: CASES[c] for c in cases},
            "results": results,
            "seconds_per_split": timings,
            "skipped": skipped,
            "table": table,
            "commit": _git_commit(),
            "platform": {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(), "threads": args.threads},
        }
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
