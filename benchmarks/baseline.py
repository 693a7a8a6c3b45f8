"""Another checkout's ``iaaa`` beside this one, in one process: what the A/B benchmarks
(``ops.py --workloads f --baseline DIR``, ``paste.py --baseline DIR``) compare against, call by
call, so both sides run in the same seconds of a machine whose speed moves by the minute."""

from __future__ import annotations

import atexit
import importlib
import re
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def load_baseline(root: str, *modules: str) -> ModuleType:
    """The ``iaaa`` package of checkout ``root`` imported as ``iaaa_base`` (and its submodules
    ``modules``, e.g. ``"ops"``) from a temporary copy, removed at exit, whose ``iaaa`` imports
    (statements and lazily imported module names) are rewritten: none of its modules, not even
    one imported inside a function later, resolves to this checkout's."""
    src = Path(root).resolve() / "iaaa"
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"--baseline {root}: no iaaa package in it")
    tmp = Path(tempfile.mkdtemp(prefix="iaaa_base_"))
    atexit.register(shutil.rmtree, tmp, True)
    dst = tmp / "iaaa_base"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for f in dst.rglob("*.py"):
        text = re.sub(r"\b(from|import) iaaa(?=[.\s])", r"\1 iaaa_base", f.read_text())
        f.write_text(re.sub(r"([\"'])iaaa\.", r"\1iaaa_base.", text))
    sys.path.insert(0, str(tmp))
    base = importlib.import_module("iaaa_base")
    for name in ("structures", *modules):
        importlib.import_module(f"iaaa_base.{name}")
    return base
