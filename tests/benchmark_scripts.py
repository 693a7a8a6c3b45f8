"""Scripts of benchmarks/ imported as modules, for the tests of the parts of them that must work
before their real run (a benchmark is a script, not a package module)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"iaaa_bench_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
