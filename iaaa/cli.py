"""The ``iaaa`` command line. Each subcommand lives in ``iaaa.commands.<name>``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from iaaa import __version__
from iaaa.errors import IaaaError

# Order is the order shown by ``iaaa --help``.
SUBCOMMANDS = ("demo", "synth", "preview", "stats", "fit_wae", "search", "evaluate", "judge", "saaa")


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


# Library messages suggest Python keywords; on the command line the same advice is a flag.
_CLI_WORDING = (
    ("every cell is below min_area; pass a smaller min_area", "every cell is too small to paste (under 10 pixels)"),
    ("is below min_area", "is too small"),
    ("keep_border=True", "--keep-border"),
    ("pass CellCompositor(dtype=...) to choose the output dtype", "convert the images to one dtype first"),
    ("pass CompositorConfig(size=...)", "pass --size H W"),
)


def cli_wording(message: str) -> str:
    """``message`` as one line, with Python-keyword advice replaced by the matching flag."""
    for python, flag in _CLI_WORDING:
        message = message.replace(python, flag)
    return " ".join(message.split("\n")).strip()


def _silence_stdout() -> None:
    # The reader went away (``iaaa stats | head -1``): stop writing, and keep Python's final
    # flush at exit from printing a BrokenPipeError of its own.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``iaaa`` command. Exit codes: 0 success, 2 bad input (one line on stderr), 130
    interrupted, 141 output pipe closed by the reader (quietly, as for SIGPIPE)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except IaaaError as exc:
        print(f"iaaa {args.command}: error: {cli_wording(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print(f"iaaa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
