"""Throughput of the Table S1 ops: iaaa vs torchvision.transforms.v2 (functional, per sample)
vs kornia.augmentation (batched) vs albumentations (OpenCV, per sample).

Every library transforms image + label map together (the label map with nearest sampling for
geometric ops), drawing its own random parameters per sample over the same ranges. Workloads:

  (a) 64 cell crops 1x64x64 per batch -- what the compositor runs;
  (b) 16 images 1x512x512 per batch;
  (c) uint16 and 4-channel inputs: which peer fails or quietly casts to 8 bits, and speeds;
  (d) iaaa alone: one cell object per call, the compositor's hot path;
  (s) the speed target of issue 20: 512x512 uint8 and uint16, one image and 16-image batches;
  (f) the fixed per-call cost of one image through ``apply_op`` (8x8 and 512x512) against
      torchvision, and with ``--baseline DIR`` against another checkout's ``apply_op``;
  (t) threads: 1 vs 2 torch threads while a busy process loads the other core(s), with and
      without the library's one-thread guard for small work (:mod:`iaaa.threads`).

Each cell is the median of ``--repeats`` timed batches after a warm-up, with torch's default
thread count; the ratios come from the same run. Install the peers with
``pip install -r benchmarks/requirements-ops.txt`` and run ``python benchmarks/ops.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torchvision.transforms.v2.functional as TF  # noqa: E402
from torchvision.transforms import InterpolationMode  # noqa: E402

from iaaa.ops import TABLE_S1, apply_op  # noqa: E402

NEAREST, BILINEAR = InterpolationMode.NEAREST, InterpolationMode.BILINEAR
LIBS = ("iaaa", "torchvision", "kornia", "albumentations")


# ----------------------------------------------------------------------------- data


def make_batch(b: int, c: int, size: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Blurry blobs on a dark background plus a label map of blocky instances."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x**2 * 0.8 + 0.05 * torch.rand(b, c, size, size, generator=g)).clamp(0, 1)
    if dtype == torch.uint8:
        img = (x * 255).round().to(torch.uint8)
    elif dtype == torch.uint16:
        img = (x * 4095).round().to(torch.int32).to(torch.uint16)  # a 12-bit camera in a 16-bit file
    else:
        img = x.to(dtype)
    cells = torch.randint(0, 6, (b, size // 8, size // 8), generator=g)
    lab = cells.repeat_interleave(8, 1).repeat_interleave(8, 2).to(torch.int64) * 7
    return img, lab


# ----------------------------------------------------------------------------- the contenders

# Parameter ranges match iaaa.ops.SPACE at uniformly random magnitude and sign.
ROT, BITS, FACTOR, SHARP, SIGMA, LOG2S = 180.0, (4, 8), 0.5, 0.9, 2.0, 0.5


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def tv_op(name: str) -> Callable | None:
    """torchvision v2 functional, one sample at a time (its documented use)."""

    def flip(fn):
        return lambda img, lab, rng: (fn(img), fn(lab))

    table: dict[str, Callable] = {
        "FlipLR": flip(TF.horizontal_flip),
        "FlipUD": flip(TF.vertical_flip),
        "AutoContrast": lambda img, lab, rng: (TF.autocontrast(img), lab),
        "Equalize": lambda img, lab, rng: (TF.equalize(img), lab),
        "Posterize": lambda img, lab, rng: (TF.posterize(img, int(rng.integers(BITS[0], BITS[1] + 1))), lab),
        "Contrast": lambda img, lab, rng: (TF.adjust_contrast(img, _u(rng, 1 - FACTOR, 1 + FACTOR)), lab),
        "Brightness": lambda img, lab, rng: (TF.adjust_brightness(img, _u(rng, 1 - FACTOR, 1 + FACTOR)), lab),
        "Sharpness": lambda img, lab, rng: (TF.adjust_sharpness(img, _u(rng, 1 - SHARP, 1 + SHARP)), lab),
        "Smooth": lambda img, lab, rng: (TF.gaussian_blur(img, [13, 13], [max(_u(rng, 0, SIGMA), 1e-3)] * 2), lab),
    }

    def rotate(img, lab, rng):
        a = _u(rng, -ROT, ROT)
        return TF.rotate(img, a, BILINEAR), TF.rotate(lab, a, NEAREST)

    def resize(img, lab, rng):
        s = 2 ** _u(rng, -LOG2S, LOG2S)
        kw = dict(angle=0.0, translate=[0, 0], scale=s, shear=[0.0, 0.0])
        return TF.affine(img, interpolation=BILINEAR, **kw), TF.affine(lab, interpolation=NEAREST, **kw)

    table.update(Rotate=rotate, Resize=resize)
    fn = table[name]

    def run(img, lab, rng):
        outs = [fn(img[i], lab[i : i + 1], rng) for i in range(img.shape[0])]
        return outs

    return run


def kornia_op(name: str) -> Callable | None:
    """kornia.augmentation, batched with per-sample parameters; needs float images."""
    import kornia.augmentation as K

    aug = {
        "FlipLR": lambda: K.RandomHorizontalFlip(p=1.0),
        "FlipUD": lambda: K.RandomVerticalFlip(p=1.0),
        "AutoContrast": lambda: K.RandomAutoContrast(p=1.0),
        "Equalize": lambda: K.RandomEqualize(p=1.0),
        "Rotate": lambda: K.RandomRotation(degrees=ROT, p=1.0),
        "Posterize": lambda: K.RandomPosterize(bits=BITS, p=1.0),
        "Contrast": lambda: K.RandomContrast(contrast=(1 - FACTOR, 1 + FACTOR), p=1.0),
        "Brightness": lambda: K.RandomBrightness(brightness=(1 - FACTOR, 1 + FACTOR), p=1.0),
        "Sharpness": lambda: K.RandomSharpness(sharpness=(0.0, SHARP), p=1.0),
        "Smooth": lambda: K.RandomGaussianBlur(kernel_size=13, sigma=(1e-3, SIGMA), p=1.0),
        "Resize": lambda: K.RandomAffine(degrees=0.0, scale=(2**-LOG2S, 2**LOG2S), p=1.0),
    }[name]()
    seq = K.AugmentationSequential(aug, data_keys=["input", "mask"])

    def run(img, lab, rng):
        dtype = img.dtype
        x = img if dtype.is_floating_point else img.float() / (255.0 if dtype == torch.uint8 else 65535.0)
        out, mask = seq(x, lab.unsqueeze(1).float())
        if not dtype.is_floating_point:  # kornia is float-only: cast back, as a user must
            out = (out * (255.0 if dtype == torch.uint8 else 65535.0)).round().to(torch.int32).to(dtype)
        return out, mask.squeeze(1).long()

    return run


def albu_op(name: str) -> Callable | None:
    """albumentations (OpenCV), one sample at a time on HWC numpy arrays."""
    import albumentations as A

    t = {
        "FlipLR": lambda: A.HorizontalFlip(p=1.0),
        "FlipUD": lambda: A.VerticalFlip(p=1.0),
        "AutoContrast": lambda: A.AutoContrast(p=1.0),
        "Equalize": lambda: A.Equalize(p=1.0),
        "Rotate": lambda: A.Rotate(limit=ROT, border_mode=0, p=1.0),
        "Posterize": lambda: A.Posterize(num_bits=BITS, p=1.0),
        "Contrast": lambda: A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=FACTOR, p=1.0),
        "Brightness": lambda: A.RandomBrightnessContrast(brightness_limit=FACTOR, contrast_limit=0.0, p=1.0),
        "Sharpness": lambda: A.Sharpen(alpha=(0.0, SHARP), p=1.0),
        "Smooth": lambda: A.GaussianBlur(sigma_limit=(1e-3, SIGMA), blur_limit=0, p=1.0),
        "Resize": lambda: A.Affine(scale=(2**-LOG2S, 2**LOG2S), p=1.0),
    }[name]()

    def run(img, lab, rng):
        # HWC numpy views are made inside the timed region: that is the price of the API.
        x = img.permute(0, 2, 3, 1).numpy()
        m = lab.to(torch.int32).numpy()
        return [t(image=x[i], mask=m[i]) for i in range(x.shape[0])]

    return run


def iaaa_op(name: str) -> Callable:
    g = torch.Generator().manual_seed(0)

    def run(img, lab, rng):
        mags = torch.rand(img.shape[0], generator=g, dtype=torch.float64)
        return apply_op(name, img, lab, mags, g)

    return run


MAKERS = {"iaaa": iaaa_op, "torchvision": tv_op, "kornia": kornia_op, "albumentations": albu_op}


# ----------------------------------------------------------------------------- timing


def run_table(title: str, b: int, c: int, size: int, dtype: torch.dtype, repeats: int, ops: list[str]) -> list[dict[str, Any]]:
    """Images per second per library: batch size over the median time of ``repeats`` batches.

    Libraries take turns batch by batch (in rotating order), so load from other processes on
    the machine hits all of them alike."""
    img, lab = make_batch(b, c, size, dtype)
    rows = []
    for name in ops:
        fns: dict[str, Callable] = {}
        row: dict[str, Any] = {"op": name}
        for lib in LIBS:
            try:
                fn = MAKERS[lib](name)
                fn(img, lab, np.random.default_rng(0))  # warm-up and failure check
                fns[lib] = fn
            except Exception as e:  # a peer that cannot do it is reported, not fatal
                row[lib] = f"fails ({type(e).__name__})"
        times: dict[str, list[float]] = {lib: [] for lib in fns}
        rng = np.random.default_rng(1)
        order = list(fns)
        for r in range(repeats):
            for lib in order[r % len(order):] + order[: r % len(order)]:
                t = time.perf_counter()
                fns[lib](img, lab, rng)
                times[lib].append(time.perf_counter() - t)
        for lib, ts in times.items():
            row[lib] = b / statistics.median(ts)
        rows.append(row)
    print_table(title, rows)
    return rows


def _fmt(v: Any) -> str:
    return f"{v:,.0f}" if isinstance(v, float) else str(v)


def _ratio(a: Any, *peers: Any) -> str:
    nums = [p for p in peers if isinstance(p, float)]
    if not isinstance(a, float) or not nums:
        return "-"
    return f"{a / max(nums):.2f}"


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n### {title}\n")
    print("| op | iaaa img/s | torchvision | kornia | albumentations | iaaa / best peer | iaaa / tv+kornia | iaaa / albumentations |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [_fmt(r[k]) for k in LIBS]
        print(f"| {r['op']} | " + " | ".join(cells) + f" | {_ratio(r['iaaa'], r['torchvision'], r['kornia'], r['albumentations'])}"
              f" | {_ratio(r['iaaa'], r['torchvision'], r['kornia'])} | {_ratio(r['iaaa'], r['albumentations'])} |")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- (c) fidelity


def _levels(x: Any) -> int:
    a = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x)
    return int(np.unique(a).size)


def _first_image(lib: str, out: Any) -> np.ndarray:
    """The first sample's image as a (C, H, W) numpy array, whatever the library returned."""
    if lib == "albumentations":
        x = np.asarray(out[0]["image"])
        return (x[None] if x.ndim == 2 else x.transpose(2, 0, 1))
    if lib == "torchvision":
        return out[0][0].numpy()
    return out[0][0].numpy()  # iaaa and kornia: batched (image, labels)


def fidelity(ops: list[str]) -> None:
    """What each library does with uint16 and 4-channel inputs."""
    print("\n### (c) What each library does with uint16 (12-bit content) and 4-channel inputs\n")
    print("Cells: `ok` or `fails (error)`, the output dtype, and for AutoContrast / Equalize /")
    print("Posterize the number of distinct levels of sample 0 (input: shown in the first column).\n")
    print("| op | input | iaaa | torchvision | kornia | albumentations |")
    print("|---|---|---|---|---|---|")
    for name in ops:
        for label, c, dtype in (("uint16 1x64x64", 1, torch.uint16), ("uint8 4x64x64", 4, torch.uint8)):
            img, lab = make_batch(4, c, 64, dtype)
            n_in = _levels(img[0].to(torch.int32))
            cells = []
            for lib in LIBS:
                try:
                    x = _first_image(lib, MAKERS[lib](name)(img, lab, np.random.default_rng(0)))
                except Exception as e:
                    cells.append(f"fails ({type(e).__name__})")
                    continue
                note = f"ok ({x.dtype})"
                if x.shape[0] != c:
                    note = f"wrong channels {x.shape}"
                elif dtype == torch.uint16 and name in ("AutoContrast", "Equalize", "Posterize"):
                    n = _levels(x)
                    cast = name != "Posterize" and n <= 256 < n_in
                    note = f"{'8-bit cast' if cast else 'ok'} ({x.dtype}, {n} levels)"
                if lib == "kornia" and dtype == torch.uint16:
                    note += "; float only, converted by the caller"
                cells.append(note)
            print(f"| {name} | {label}" + (f", {n_in} levels" if dtype == torch.uint16 else "") + " | " + " | ".join(cells) + " |")


def single_object(repeats: int) -> None:
    """Latency of one ``apply_op`` call on one cell object, the compositor's hot path."""
    from iaaa.ops import SPACE

    img, lab = make_batch(1, 1, 48, torch.uint8)
    img, lab = img[0], lab[0]
    g = torch.Generator().manual_seed(0)
    print("\n### (d) One cell object 1x48x48 uint8 + labels per call, `apply_op(..., expand=True)`, magnitude 0.5\n")
    print("| op | us / call | objects / s |")
    print("|---|---:|---:|")
    for name in SPACE:
        for _ in range(20):
            apply_op(name, img, lab, 0.5, g, expand=True)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(50):
                apply_op(name, img, lab, 0.5, g, expand=True)
            times.append((time.perf_counter() - t) / 50)
        us = statistics.median(times) * 1e6
        print(f"| {name} | {us:,.0f} | {1e6 / us:,.0f} |")


def fixed_cost(repeats: int, ops: list[str], baseline: str | None) -> None:
    """Per-call time of one image ``(1, 1, S, S)`` + label map through ``apply_op`` (magnitude
    drawn per call, as in the tables above) against torchvision v2 functional, at S = 8 (the
    fixed cost: argument checks, parameter draws, dispatch) and S = 512; with ``--baseline DIR``
    also ``apply_op`` of another checkout, interleaved call by call with this one."""
    impls: dict[str, Any] = {"iaaa": apply_op}
    if baseline:
        from baseline import load_baseline  # benchmarks/baseline.py, beside this script

        impls["base"] = load_baseline(baseline, "ops").ops.apply_op
    print(f"\n### (f) Per-call us, one image + labels, {torch.get_num_threads()} torch thread(s), median of {repeats} rounds\n")
    cols = list(impls) + ["torchvision"]
    head = " | ".join(f"{c} us" for c in cols)
    extra = " | base / iaaa (speed-up)" if baseline else ""
    print(f"| op | image | {head} | tv / iaaa{extra} |")
    print("|---|---|" + "---:|" * (len(cols) + 1 + bool(baseline)))
    for dtype, size in ((torch.uint8, 8), (torch.uint8, 512), (torch.uint16, 512)):
        img, lab = make_batch(1, 1, size, dtype)
        label = f"{size}x{size} {str(dtype).replace('torch.', '')}"
        for name in ops:
            fns: dict[str, Callable] = {}
            for key, fn in impls.items():
                g = torch.Generator().manual_seed(0)
                fns[key] = lambda fn=fn, g=g: fn(name, img, lab, torch.rand(1, generator=g, dtype=torch.float64), g)
            try:
                tv, rng = tv_op(name), np.random.default_rng(0)
                fns["torchvision"] = lambda tv=tv, rng=rng: tv(img, lab, rng)
            except KeyError:
                pass
            inner = 200 if size <= 64 else 10
            times: dict[str, list[float]] = {k: [] for k in fns}
            order = list(fns)
            for f in fns.values():
                f()
            for r in range(repeats):
                for k in order[r % len(order):] + order[: r % len(order)]:
                    t = time.perf_counter()
                    for _ in range(inner):
                        fns[k]()
                    times[k].append((time.perf_counter() - t) / inner * 1e6)
            med = {k: statistics.median(v) for k, v in times.items()}
            cells = " | ".join(f"{med[c]:,.1f}" if c in med else "-" for c in cols)
            ratio = f"{med['torchvision'] / med['iaaa']:.2f}" if "torchvision" in med else "-"
            speed = f" | {med['base'] / med['iaaa']:.2f}" if baseline else ""
            print(f"| {name} | {label} | {cells} | {ratio}{speed} |")
            sys.stdout.flush()


def _busy_processes(n: int) -> list:
    """``n`` processes spinning on a core each, to make the machine 'loaded' on purpose."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def threads_table(repeats: int) -> None:
    """Median time of small batched work under 1 and 2 torch threads while other cores spin,
    with the guard of :mod:`iaaa.threads` on (the library's default) and off."""
    import os

    import iaaa.threads as th

    limit = th.PARALLEL_MIN_NUMEL
    busy = _busy_processes(max(1, (os.cpu_count() or 2) - 1))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 64, 64)
    crops, clab = make_batch(64, 1, 64, torch.uint8)
    big, blab = make_batch(16, 1, 512, torch.uint8)
    work = {
        "`x + 1`, 64x1x64x64 float32 (plain torch, no guard)": lambda: x + 1,
        "Brightness, 64 crops 1x64x64 uint8": lambda: apply_op("Brightness", crops, clab, 0.5, g),
        "Rotate, 64 crops 1x64x64 uint8": lambda: apply_op("Rotate", crops, clab, 0.5, g),
        "Equalize, 64 crops 1x64x64 uint8": lambda: apply_op("Equalize", crops, clab, 0.5, g),
        "Brightness, 16 x 1x512x512 uint8": lambda: apply_op("Brightness", big, blab, 0.5, g),
        "Rotate, 16 x 1x512x512 uint8": lambda: apply_op("Rotate", big, blab, 0.5, g),
    }
    print(f"\n### (t) Threads: {len(busy)} busy process(es) spinning beside the benchmark\n")
    print("Median ms of %d calls (calls interleaved across settings)." % repeats)
    print("\n| work | 1 thread | 2 threads, no guard | 2 threads, guard (default) | guard / 1 thread |")
    print("|---|---:|---:|---:|---:|")
    settings = (("1", 1, limit), ("2 raw", 2, 0), ("2 guard", 2, limit))
    try:
        for name, fn in work.items():
            times: dict[str, list[float]] = {k: [] for k, _, _ in settings}
            for _ in range(repeats):
                for key, nt, lim in settings:
                    torch.set_num_threads(nt)
                    th.PARALLEL_MIN_NUMEL = lim
                    fn()
                    t = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - t)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            print(f"| {name} | {med['1']:.2f} | {med['2 raw']:.2f} | {med['2 guard']:.2f} | {med['2 guard'] / med['1']:.2f} |")
            sys.stdout.flush()
    finally:
        th.PARALLEL_MIN_NUMEL = limit
        for p in busy:
            p.kill()
            p.wait()


def speed_table(repeats: int, ops: list[str]) -> None:
    """Issue 20's ops target: 512x512 uint8 and uint16, one image and 16 images, one thread."""
    for dtype in (torch.uint8, torch.uint16):
        d = str(dtype).replace("torch.", "")
        for b in (1, 16):
            run_table(f"(s) {b} image{'s' if b > 1 else ''} 1x512x512 {d}, {torch.get_num_threads()} torch thread(s)", b, 1, 512, dtype, repeats if b == 1 else max(3, repeats // 2), ops)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7, help="timed batches per cell (median reported)")
    p.add_argument("--workloads", default="a,b,c,d", help="comma list of a, b, c, d, f, s, t")
    p.add_argument("--baseline", default=None, help="(f): also time apply_op of the checkout in this folder (e.g. a git worktree of the base commit)")
    p.add_argument("--ops", default=",".join(TABLE_S1), help="comma list of op names")
    p.add_argument("--threads", default="0", help="comma list of torch thread counts to run with; 0 = torch's default")
    args = p.parse_args()
    ops = args.ops.split(",")
    import kornia
    import torchvision

    try:  # a missing peer is reported per op as "fails (ModuleNotFoundError)", not fatal
        import albumentations
        import cv2

        albu = f"albumentations {albumentations.__version__}, opencv threads {cv2.getNumThreads()}"
    except ImportError:
        albu = "albumentations not installed"

    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, kornia {kornia.__version__}, "
          f"{albu}; "
          f"median of {args.repeats} batches (512x512: {max(3, args.repeats // 2)})")
    wl = set(args.workloads.split(","))
    for nt in (int(t) or default_threads for t in args.threads.split(",")):
        torch.set_num_threads(nt)
        tag = f"{nt} torch thread{'s' if nt > 1 else ''}"
        for dtype in (torch.uint8, torch.float32):
            d = str(dtype).replace("torch.", "")
            if "a" in wl:
                run_table(f"(a) 64 crops 1x64x64 {d}, {tag}", 64, 1, 64, dtype, args.repeats, ops)
            if "b" in wl:
                run_table(f"(b) 16 images 1x512x512 {d}, {tag}", 16, 1, 512, dtype, max(3, args.repeats // 2), ops)
        if "c" in wl:
            run_table(f"(c) 64 crops 1x64x64 uint16, {tag}", 64, 1, 64, torch.uint16, args.repeats, ops)
            run_table(f"(c) 64 crops 4x64x64 uint8, {tag}", 64, 4, 64, torch.uint8, args.repeats, ops)
        if "d" in wl:
            single_object(args.repeats)
        if "f" in wl:
            fixed_cost(args.repeats, ops, args.baseline)
        if "s" in wl:
            speed_table(args.repeats, ops)
    if "t" in wl:
        threads_table(max(args.repeats, 15))
    if "c" in wl:
        fidelity(ops)


if __name__ == "__main__":
    main()
