#!/usr/bin/env bash
# The CPU training run behind benchmarks/saaa.md: the default SAAA model on dsb2018_fluo, then the
# Pix2Pix generator again with the other two offline perceptual choices ("random", "none") on the
# same crops and the same diffusion model (its finished checkpoint is copied in, so only Pix2Pix
# trains), for the perceptual-default comparison. One torch thread; ~40 min on a shared 2-core CPU.
#
#   bash benchmarks/saaa_train.sh [OUT=out/saaa] [DATA=../shared/data/dsb2018_fluo]
set -euo pipefail
OUT=${1:-out/saaa}
DATA=${2:-../shared/data/dsb2018_fluo}
IN=(--images "$DATA/images" --masks "$DATA/masks")
mkdir -p "$OUT"
date -u +"start %FT%TZ"
python3 -m iaaa saaa fit "${IN[@]}" --out "$OUT/wae" --seed 0 --threads 1
for p in random none; do
  mkdir -p "$OUT/$p/checkpoints"
  cp "$OUT/wae/checkpoints/diffusion.ckpt" "$OUT/$p/checkpoints/diffusion.ckpt"
  python3 -m iaaa saaa fit "${IN[@]}" --out "$OUT/$p" --perceptual "$p" --seed 0 --threads 1
done
date -u +"end %FT%TZ"
