"""benchmarks/gpu.py, the Python half of benchmarks/gpu.sh, works before a GPU is at hand: its
ops part runs in the quick CPU mode and writes a table with every Table S1 op."""

from __future__ import annotations

import re

import pytest
import torch

from iaaa.ops import TABLE_S1
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def gpu_bench():
    mod = load_benchmark("gpu")
    n = torch.get_num_threads()
    yield mod
    torch.set_num_threads(n)


def test_quick_cpu_ops_part_writes_every_op(gpu_bench, tmp_path):
    out = tmp_path / "gpu_results.md"
    assert gpu_bench.main(["--device", "cpu", "--quick", "--parts", "ops", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| op ")]
    for dtype in ("uint8", "float32"):
        for name in TABLE_S1:
            row = next((r for r in rows if r.startswith(f"| {name} | {dtype} |")), None)
            assert row is not None, (name, dtype)
            iaaa_rate = float(row.split("|")[3].replace(",", ""))
            assert iaaa_rate > 0
            # Kornia either gives a rate (and a ratio) or is reported as failing.
            assert re.search(r"\| [\d,]+ \| \d+\.\d\d \|$|fails \(", row), row


def test_bad_options_exit_2_with_one_line(gpu_bench, capsys):
    assert gpu_bench.main(["--device", "cpu", "--parts", "ops,bogus"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert gpu_bench.main(["--device", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device bogus" in err and err.count("\n") == 0
