#!/usr/bin/env bash
# The GPU checks of issue 20 item 5 on one CUDA machine, in under 5 minutes:
#   1. install the project (pip install -e ".[dev]"; offline fallbacks keep going),
#   2. run the CUDA tests (pytest -m cuda: every test that needs a GPU carries the marker),
#   3. measure ops vs Kornia, compositor images/s and judge s/step (benchmarks/gpu.py),
#   4. fit of 32 simulated 1024 px images serially and with 8 worker processes on its CPU cores
#      (issue 20 item 2 on a many-core machine; benchmarks/fit.py).
# Results go to $OUT (the device runner's folder) or benchmarks/results/, and are printed.
# What each number means: benchmarks/gpu.md.   Usage: bash benchmarks/gpu.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
DEST="${OUT:-benchmarks/results}"
mkdir -p "$DEST"
QUICK="${1:-}"
t0=$(date +%s)
say() { echo "[gpu.sh $(( $(date +%s) - t0 ))s] $*"; }

say "install"
if ! timeout 90 python3 -m pip install -q -e ".[dev]" >"$DEST/gpu_install.log" 2>&1; then
    # No network on the device machine: the dependencies are usually there already.
    timeout 60 python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$DEST/gpu_install.log" 2>&1 \
        || say "pip install failed (see gpu_install.log); running from the checkout"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import iaaa, torch; print('iaaa from', iaaa.__file__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    say "no CUDA device here: nothing to measure (on a CPU use: python3 benchmarks/gpu.py --device cpu --quick)"
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv,noheader 2>/dev/null | tee "$DEST/gpu_device.txt"

say "CUDA tests"
timeout 100 python3 -m pytest -q -p no:cacheprovider -m cuda tests/ 2>&1 | tail -15 | tee "$DEST/gpu_tests.txt"

say "benchmarks"
timeout 170 python3 benchmarks/gpu.py --device cuda ${QUICK:+--quick} --out "$DEST/gpu_results.md"
rc=$?

say "fit with worker processes"
timeout 90 python3 benchmarks/fit.py --images 0 --simulated 32 --threads 1 --workers 0,8 2>&1 | tail -5 | tee "$DEST/gpu_fit.txt"
say "done (benchmark exit $rc); results in $DEST/gpu_results.md, $DEST/gpu_fit.txt"
exit $rc
