"""Helpers of the hostile-input tests: run the CLI, require exit 2 with one stderr line naming
what is at fault, and require that nothing outside the command's output changed.

Also :func:`cli_under_memory_limit`: CLI runs in one subprocess under an address-space limit,
for the resource cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from iaaa.cli import main


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``root``: contents and mode (folders: empty contents)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.read_bytes() if p.is_file() else b"", st.st_mode)
    return out


def cli(capsys, *argv) -> tuple[int, list[str]]:
    """Run ``iaaa argv``; its exit code and stderr lines."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def refused(rc: int, err: list[str], *needles: str) -> str:
    """Require exit 2 and exactly one stderr line holding every needle; that line."""
    assert rc == 2, (rc, err)
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert "Traceback" not in err[0]
    return err[0]


def check(capsys, root: Path, argv: list, *needles: str, out: Path | None = None) -> str:
    """Run the CLI, require a refusal (see :func:`refused`), and require that nothing under
    ``root`` was created, changed or deleted except inside ``out``."""
    before = snapshot(root)
    rc, err = cli(capsys, *argv)
    line = refused(rc, err, *needles)
    after = snapshot(root)
    inside = str(out.relative_to(root)) if out is not None else None
    changed = sorted(
        k for k in set(before) | set(after)
        if before.get(k) != after.get(k) and not (inside and (k == inside or k.startswith(inside + os.sep)))
    )
    assert not changed, f"a refused run changed files outside its output: {changed[:10]}"
    return line


ROOT = Path(__file__).resolve().parents[1]

_LIMITED_CLI = r"""
import contextlib, io, json, resource, sys
import torch
torch.set_num_threads(1)
import iaaa.cli
for name in sys.argv[3].split(","):
    if name:
        __import__(name)
def vmsize():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
limit = vmsize() + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = iaaa.cli.main(argv)
    results.append({"rc": rc, "err": err.getvalue()})
print(json.dumps(results))
"""


def cli_under_memory_limit(argvs: list[list], headroom: int, preload: tuple[str, ...] = ()) -> list[dict]:
    """Run each ``iaaa argv`` in ONE subprocess whose address space is limited to what it holds
    after importing torch, iaaa and ``preload`` (the modules the cases will need, imported before
    the limit so only the cases' own allocations count) plus ``headroom`` bytes. Returns one
    ``{"rc", "err"}`` per argv."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED_CLI, json.dumps([[str(a) for a in argv] for argv in argvs]), str(headroom), ",".join(preload)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
