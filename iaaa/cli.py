"""The ``iaaa`` command line. Each subcommand lives in ``iaaa.commands.<name>``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from iaaa import __version__
from iaaa.errors import IaaaError

# Order is the order shown by ``iaaa --help``.
SUBCOMMANDS = ("demo", "synth", "preview", "stats", "fit_wae", "search", "evaluate", "judge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iaaa",
        description="Instance-aware augmentation: synthetic cell microscopy images with exact instance masks.",
    )
    parser.add_argument("--version", action="version", version=f"iaaa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"iaaa.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (IaaaError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"iaaa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"iaaa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
