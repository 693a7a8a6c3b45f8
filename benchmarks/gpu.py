"""GPU measurements of issue 20 item 5 (run by benchmarks/gpu.sh; see benchmarks/gpu.md).

Three parts, each printed as a markdown table and collected into ``--out``:

* ``ops``: batched throughput of the Table S1 ops, iaaa (``apply_op``, one magnitude per sample)
  vs Kornia (``AugmentationSequential`` with image + mask) on the same device, 64 images of
  256x256 per batch, uint8 and float32 (Kornia is float-only: integer batches are converted
  there and back inside its timed region, as a user must);
* ``compositor``: images/s of ``CellCompositor(size=512).fit(simulate_cells(...)).to(device)``
  with ``sample(generator)``, the public API only;
* ``judge``: seconds per training step of the downstream judge, through ``benchmarks/
  downstream.py --device`` when the real data sits beside the checkout, else through
  ``iaaa.judge.judge`` on simulated cells.

``--device cpu --quick`` runs everything small on the CPU, so the script is known to work
before a GPU is at hand (tests/ops/test_ops_gpu_script.py runs its ops part).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iaaa.ops import TABLE_S1  # noqa: E402


def _opsbench():
    """benchmarks/ops.py as a module: its peers and data are the ones the CPU tables use."""
    spec = importlib.util.spec_from_file_location("iaaa_bench_ops", Path(__file__).with_name("ops.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after two warm-up calls, device synchronised."""
    fn()
    fn()
    ts = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def ops_part(device: torch.device, quick: bool) -> str:
    b, size, repeats = (4, 64, 3) if quick else (64, 256, 10)
    bench = _opsbench()
    lines = [f"### Ops: {b} images 1x{size}x{size} per batch on {device}, images/s (median of {repeats} batches)", "",
             "| op | dtype | iaaa | kornia | iaaa / kornia |", "|---|---|---:|---:|---:|"]
    for dtype in (torch.uint8, torch.float32):
        img, lab = bench.make_batch(b, 1, size, dtype)
        img, lab = img.to(device), lab.to(device)
        for name in TABLE_S1:
            rates: dict[str, Any] = {}
            g = torch.Generator(device="cpu").manual_seed(0)
            mags = torch.rand(b, generator=g, dtype=torch.float64)
            from iaaa.ops import apply_op

            rates["iaaa"] = b / _time(lambda: apply_op(name, img, lab, mags, g), device, repeats)
            try:
                k = bench.kornia_op(name)
                rates["kornia"] = b / _time(lambda: k(img, lab, None), device, repeats)
            except Exception as e:  # a failing peer is reported, not fatal
                rates["kornia"] = f"fails ({type(e).__name__})"
            kr = rates["kornia"]
            ratio = f"{rates['iaaa'] / kr:.2f}" if isinstance(kr, float) else "-"
            kcell = f"{kr:,.0f}" if isinstance(kr, float) else kr
            lines.append(f"| {name} | {str(dtype).replace('torch.', '')} | {rates['iaaa']:,.0f} | {kcell} | {ratio} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def compositor_part(device: torch.device, quick: bool) -> str:
    from iaaa import CellCompositor, CompositorConfig
    from iaaa.datasets import simulate_cells

    size, n_fit, n_time = ((128, 128), 3, 4) if quick else ((512, 512), 16, 64)
    samples = simulate_cells(n_fit, seed=0, size=size)
    t = time.perf_counter()
    comp = CellCompositor(CompositorConfig(size=size)).fit(samples, progress=False).to(str(device))
    fit_s = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    comp.sample(g)
    _sync(device)
    t = time.perf_counter()
    cells = 0
    for _ in range(n_time):
        s = comp.sample(g)
        cells += int(s.labels.max())
    _sync(device)
    dt = time.perf_counter() - t
    return "\n".join([
        f"### Compositor on {device}: {size[0]}x{size[1]}, fitted on {n_fit} simulated images", "",
        "| fit s | images/s | ms/image | mean max label id |", "|---:|---:|---:|---:|",
        f"| {fit_s:.1f} | {n_time / dt:,.1f} | {1e3 * dt / n_time:.1f} | {cells / n_time:.1f} |",
    ])


def _judge_via_benchmark(device: torch.device, steps: int) -> dict[str, Any] | None:
    """benchmarks/downstream.py with --device, when it has the option and the data is there."""
    script = ROOT / "benchmarks" / "downstream.py"
    data = ROOT.parent / "shared" / "data" / "usiigaci_phase_dev"
    if not script.is_file() or not (data / "images").is_dir():
        return None
    helptext = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True).stdout
    if "--device" not in helptext:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "judge.json"
        cmd = [sys.executable, str(script), "--cases", "real", "--seeds", "0", "--steps", str(steps), "--device", str(device), "--json", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not out.is_file():
            print(f"judge benchmark failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:] }", flush=True)
            return None
        data = json.loads(out.read_text())
    per = next(iter(data["results"].values()))
    return {"how": "benchmarks/downstream.py (usiigaci_phase_dev, real only, seed 0)", "train_s": next(iter(per.values()))["train_s"]}


def judge_part(device: torch.device, quick: bool) -> str:
    steps = 20 if quick else 200
    res = None if quick else _judge_via_benchmark(device, steps)
    if res is None:
        from iaaa.datasets import simulate_cells
        from iaaa.judge import judge

        sims = simulate_cells(6 if quick else 24, seed=1, size=(128, 128) if quick else (256, 256))
        cut = len(sims) * 2 // 3
        report = judge(sims[:cut], sims[cut:], {}, seeds=(0,), steps=steps, crop=64 if quick else 96, include_real=True, device=str(device))
        per = next(iter(report.to_dict()["results"].values()))
        res = {"how": "iaaa.judge.judge on simulated cells (real only, seed 0)", "train_s": next(iter(per.values()))["train_s"]}
    return "\n".join([
        f"### Judge on {device}: {steps} training steps", "", "| how | train s | s/step |", "|---|---:|---:|",
        f"| {res['how']} | {res['train_s']:.1f} | {res['train_s'] / steps:.4f} |",
    ])


PARTS = {"ops": ops_part, "compositor": compositor_part, "judge": judge_part}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (a smoke run)")
    p.add_argument("--parts", default="ops,compositor,judge", help="comma list of %s" % ", ".join(PARTS))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--out", help="also write the tables (markdown) here")
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = [s for s in parts if s not in PARTS]
    if unknown:
        print(f"--parts: unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        torch.empty(1, device=device)
    except RuntimeError as e:
        print(f"--device {args.device}: not usable here ({str(e).splitlines()[0]})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    import kornia

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    head = (f"torch {torch.__version__}, kornia {kornia.__version__}, device {device} ({name}), "
            f"{torch.get_num_threads()} CPU thread(s), quick={args.quick}, command: python benchmarks/gpu.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(head, flush=True)
    sections = [head]
    for part in parts:
        t = time.perf_counter()
        text = PARTS[part](device, args.quick)
        print(text + f"\n\n({part}: {time.perf_counter() - t:.0f} s)\n", flush=True)
        sections.append(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n\n".join(sections) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
