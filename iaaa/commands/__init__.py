"""Subcommands of the ``iaaa`` command line, one module each.

Each module defines ``register(subparsers)``, which adds its parser and sets
``func=run``, and ``run(args) -> int``. Raise :class:`iaaa.errors.IaaaError` for bad input:
the CLI prints it as one line and exits with code 2.
"""
