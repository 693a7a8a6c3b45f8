#!/usr/bin/env bash
# The CPU training run behind benchmarks/saaa.md: the default SAAA model on dsb2018_fluo, then the
# Pix2Pix generator again with the other offline perceptual choices ("none", "random") on the same
# crops and the same diffusion model (its finished checkpoint is copied in, so only Pix2Pix
# trains), for the perceptual-default comparison. One torch thread; ~45 min on a shared 2-core CPU.
#
#   bash benchmarks/saaa_train.sh [OUT=out/saaa] [DATA=../shared/data/dsb2018_fluo] [DIFFUSION_STEPS=1000]
set -euo pipefail
OUT=${1:-out/saaa}
DATA=${2:-../shared/data/dsb2018_fluo}
DSTEPS=${3:-1000}
# --prediction-type epsilon: the recorded run predates the v_prediction default (see benchmarks/saaa.md).
IN=(--images "$DATA/images" --masks "$DATA/masks" --diffusion-steps "$DSTEPS" --prediction-type epsilon --seed 0 --threads 1)
mkdir -p "$OUT"
date -u +"start %FT%TZ"
python3 -m iaaa saaa fit "${IN[@]}" --out "$OUT/wae"
date -u +"wae done %FT%TZ"
for p in none random; do
  mkdir -p "$OUT/$p/checkpoints"
  cp "$OUT/wae/checkpoints/diffusion.ckpt" "$OUT/$p/checkpoints/diffusion.ckpt"
  python3 -m iaaa saaa fit "${IN[@]}" --out "$OUT/$p" --perceptual "$p"
  date -u +"$p done %FT%TZ"
done
