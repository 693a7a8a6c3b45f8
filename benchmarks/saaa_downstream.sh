#!/usr/bin/env bash
# Real + SAAA vs real only, judged on held-out dsb2018_fluo images (issue 12's downstream evidence).
# SAAA is trained on the judge's TRAIN split only (benchmarks/downstream.py: split), so no test image is
# seen by the generator. ~25 min on one CPU thread: SAAA fit ~5 min, sampling ~3 min, judge ~15 min.
#   bash benchmarks/saaa_downstream.sh [OUT_DIR]        (default out/saaa_downstream)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/saaa_downstream}
mkdir -p "$out"
python3 - "$out" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import downstream
from iaaa.data import read_label_folder
src, out = Path("../shared/data/dsb2018_fluo"), Path(sys.argv[1]) / "train"
train, _ = downstream.split("dsb", read_label_folder(src / "images", src / "masks"))
names = {s.name for s in train}
for sub in ("images", "masks"):
    (out / sub).mkdir(parents=True, exist_ok=True)
    for f in (src / sub).iterdir():
        if f.stem in names and not (out / sub / f.name).exists():
            (out / sub / f.name).symlink_to(f.resolve())
print(f"{len(names)} training images linked into {out}")
PY
python3 -m iaaa saaa fit --images "$out/train/images" --masks "$out/train/masks" --out "$out/model" --diffusion-steps 300 --pix2pix-steps 1500 --threads 1 --quiet
python3 -m iaaa saaa sample --model "$out/model" --n 32 --out "$out/synthetic" --size 128 --no-progress
python3 benchmarks/downstream.py --dataset dsb --cases real --synthetic "$out/synthetic" --json "$out/judge.json"
