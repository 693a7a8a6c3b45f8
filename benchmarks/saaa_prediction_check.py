"""Equal-budget check: the foreground fraction of masks sampled (DDIM, 25 steps, 32 masks) from
an epsilon- and a v-prediction mask DDPM after N training steps each, beside the real crops'.

    python benchmarks/saaa_prediction_check.py 300      # ~8 min on one CPU thread
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
from iaaa.data import read_label_folder
from iaaa.saaa import MaskDiffusion, MaskDiffusionConfig, labels_to_channels, fit_mask_diffusion
from iaaa.saaa.model import random_crops
from iaaa.saaa.training import CropPool
real = read_label_folder("../shared/data/dsb2018_fluo/images","../shared/data/dsb2018_fluo/masks")
_, lab = random_crops(real, 64, 64, torch.Generator().manual_seed(0))
pool = CropPool(labels_to_channels(lab))
print("real fg", float((pool.masks[:, 0] > 0).float().mean()), flush=True)
steps = int(sys.argv[1])
for kind in ("epsilon", "v_prediction"):
    t = time.time()
    m = MaskDiffusion(MaskDiffusionConfig(size=64, prediction_type=kind), seed=0)
    fit_mask_diffusion(m, pool, steps, batch_size=8, seed=0)
    ch = m.sample_channels(32, torch.Generator().manual_seed(0), steps=25)
    print(kind, steps, "fg", float((ch[:, 0] > 0).float().mean()), f"{time.time() - t:.0f}s", flush=True)
