"""Paired kernel timing for benchmarks/ops.md: the integer photometric kernels of whichever
``iaaa`` is first on PYTHONPATH vs torchvision v2 (per sample), 512x512, one thread, min of 15
calls, printed as JSON. Run it alternately against two checkouts to compare them:

    for i in 1 2; do PYTHONPATH=<old checkout> python3 benchmarks/ops_kernels.py > old_$i.json
                     PYTHONPATH=. python3 benchmarks/ops_kernels.py > new_$i.json; done
"""
import torch, time, sys, json
torch.set_num_threads(1)
from iaaa.ops import functional as F
import torchvision.transforms.v2.functional as TF
def tm(fn, r=15):
    fn(); ts=[]
    for _ in range(r):
        t=time.perf_counter(); fn(); ts.append(time.perf_counter()-t)
    return min(ts)*1e6
res={}
for dt in (torch.uint8, torch.uint16):
  for B in (1,16):
    x = torch.randint(0,4096 if dt==torch.uint16 else 256,(B,1,512,512),dtype=torch.int32,generator=torch.Generator().manual_seed(0)).to(dt)
    f = torch.linspace(0.6,1.4,B,dtype=torch.float64) if B>1 else 1.3
    for nm, ours, tv in (("Brightness", lambda: F.adjust_brightness(x, f), lambda: [TF.adjust_brightness(x[i], 1.3) for i in range(B)]),
                         ("Contrast", lambda: F.adjust_contrast(x, f), lambda: [TF.adjust_contrast(x[i], 1.3) for i in range(B)]),
                         ("AutoContrast", lambda: F.autocontrast(x), lambda: [TF.autocontrast(x[i]) for i in range(B)]),
                         ("Posterize", lambda: F.posterize(x, 5), lambda: [TF.posterize(x[i], 5) for i in range(B)])):
        res[f"{nm} {str(dt)[6:]} B={B}"] = (tm(ours), tm(tv))
print(json.dumps(res))
