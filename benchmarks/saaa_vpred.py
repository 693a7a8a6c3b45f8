"""Train the mask DDPM with v-prediction for N steps on the crops SAAA.fit uses (seed 0) and put it
into a copy of the CPU model folder out/saaa/wae (its Pix2Pix generator unchanged: that one is
trained on real masks and does not depend on the mask model), so benchmarks/saaa.py can score it.

    python benchmarks/saaa_vpred.py 300 out/saaa/vpred300      # ~4 min on one CPU thread
    python benchmarks/saaa.py --model out/saaa/vpred300 --json out/saaa/bench_vpred300.json
"""
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
from iaaa.data import read_label_folder
from iaaa.saaa import SAAA, MaskDiffusion, MaskDiffusionConfig, labels_to_channels, fit_mask_diffusion
from iaaa.saaa.model import random_crops
from iaaa.saaa.training import CropPool
steps, out = int(sys.argv[1]), Path(sys.argv[2])
real = read_label_folder("../shared/data/dsb2018_fluo/images", "../shared/data/dsb2018_fluo/masks")
_, lab = random_crops(real, 64, 64, torch.Generator().manual_seed(0))   # the crops SAAA.fit uses (seed 0)
pool = CropPool(labels_to_channels(lab))
base = SAAA.load("out/saaa/wae")
cfg = MaskDiffusionConfig(**{**base.diffusion.config.to_dict(), "prediction_type": "v_prediction"})
m = MaskDiffusion(cfg, seed=0)
rep = fit_mask_diffusion(m, pool, steps, batch_size=8, seed=0)
print("trained", steps, "steps in", round(rep.seconds), "s; mse", rep.losses["mse"][-1], flush=True)
base.diffusion = m.eval()
base.config.diffusion = cfg
base.config.diffusion_steps = steps
base.reports = {}
if out.exists():
    shutil.rmtree(out)
base.save(out)
