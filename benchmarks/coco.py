"""COCO RLE encoding and decoding of dense label maps: iaaa's run-based codec against the
full-mask path the writer used before (one full-size uint8 mask per instance through
``pycocotools.mask.encode``, and ``pycocotools.mask.decode`` + ``masks_to_labels`` back).

Each (size, method) runs in its own subprocess with one torch thread under an address-space
limit (``--limit-gb``, so the full-mask path cannot take the machine down); the table gives the
peak resident memory the call added over the process before it, its wall time, and the ratio of
the full-mask path to iaaa's in the same run.

    python3 benchmarks/coco.py [--sizes 512 1024 2048] [--limit-gb 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
from pycocotools import mask as mask_utils
from iaaa.data.coco import coco_masks, rle_to_labels
from iaaa.label_maps import instance_ids, labels_to_boxes, labels_to_masks, masks_to_labels
side, method, limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
step = 20
# Built 64 rows at a time, so building it raises the memory high-water mark by little more
# than the map itself and the peaks below are what each call adds.
labels = torch.empty(side, side, dtype=torch.int64)
xx = torch.arange(side).view(1, -1)
for r in range(0, side, 64):
    yy = torch.arange(r, min(r + 64, side)).view(-1, 1)
    inside = (yy % step - step // 2) ** 2 + (xx % step - step // 2) ** 2 < 81
    labels[r : r + 64] = torch.where(inside, (yy // step) * (side // step + 1) + xx // step + 1, 0)
ids = instance_ids(labels)
rles = coco_masks(labels, ids)[0] if method.startswith("decode") else None
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
def vmsize():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vmsize() + limit, vmsize() + limit))
base = rss()
t0 = time.perf_counter()
try:
    if method == "encode-iaaa":
        out = coco_masks(labels, ids)
    elif method == "encode-full-masks":
        masks, _ = labels_to_masks(labels.T.contiguous(), ids, dtype=torch.uint8)
        out = mask_utils.encode(masks.numpy().transpose(2, 1, 0)), labels_to_boxes(labels, ids)
    elif method == "decode-iaaa":
        out = rle_to_labels(rles, (side, side), ids.tolist())
    elif method == "decode-full-masks":
        m = mask_utils.decode([{**r, "counts": r["counts"].encode()} for r in rles])
        out = masks_to_labels(torch.from_numpy(m).permute(2, 0, 1), ids)
    ok = True
except (MemoryError, RuntimeError):
    ok = False
print(json.dumps({"ok": ok, "s": time.perf_counter() - t0, "peak": rss() - base, "cells": int(ids.numel())}))
"""

METHODS = ("encode-iaaa", "encode-full-masks", "decode-iaaa", "decode-full-masks")


def run(side: int, method: str, limit: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(side), method, str(limit)], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        return {"ok": False, "s": float("nan"), "peak": float("nan"), "cells": 0, "rc": proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--limit-gb", type=float, default=4.0, help="address space each child may add to what it holds after building its label map (default: %(default)s)")
    args = ap.parse_args()
    limit = int(args.limit_gb * (1 << 30))
    print("| size | cells | step | iaaa peak MB | iaaa s | full-mask peak MB | full-mask s | peak ratio | time ratio |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for side in args.sizes:
        for step in ("encode", "decode"):
            ours, peer = run(side, f"{step}-iaaa", limit), run(side, f"{step}-full-masks", limit)
            mb = lambda r: f"{r['peak'] / 2**20:.0f}" if r["ok"] else f"> {args.limit_gb:g} GB (refused)"  # noqa: E731
            sec = lambda r: f"{r['s']:.2f}" if r["ok"] else "-"  # noqa: E731
            ratio_p = f"{peer['peak'] / max(ours['peak'], 1):.1f}x" if ours["ok"] and peer["ok"] else "-"
            ratio_t = f"{peer['s'] / ours['s']:.1f}x" if ours["ok"] and peer["ok"] else "-"
            print(f"| {side}x{side} | {ours['cells']} | {step} | {mb(ours)} | {sec(ours)} | {mb(peer)} | {sec(peer)} | {ratio_p} | {ratio_t} |", flush=True)


if __name__ == "__main__":
    main()
