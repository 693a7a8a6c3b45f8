"""Helpers of the hostile-input tests: run the CLI, require exit 2 with one stderr line naming
what is at fault, and require that nothing outside the command's output changed.

(tests/test_bad_inputs.py holds the same four helpers privately; new hostile-input test
modules import them from here.)"""

from __future__ import annotations

import os
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
