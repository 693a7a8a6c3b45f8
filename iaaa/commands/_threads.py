"""The ``--threads`` option of the compute-heavy subcommands: how many torch CPU threads the whole
command (reading, fitting, training) runs with, restored afterwards."""

from __future__ import annotations

import argparse
from typing import ContextManager

from iaaa.errors import IaaaError


def add_threads_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    # One thread by default: on small shared machines a second thread often waits for a
    # descheduled core (benchmarks/README.md).
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, 0 = torch's default (default: %(default)s)")


def torch_threads_of(args: argparse.Namespace) -> ContextManager[None]:
    """A context running its block under ``args.threads`` torch threads (0: leave torch's setting)."""
    from iaaa.threads import torch_threads

    if args.threads < 0:
        raise IaaaError(f"--threads must be >= 0, got {args.threads}")
    return torch_threads(args.threads or None)
