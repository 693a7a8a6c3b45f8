"""Errors that reach the user as one clear line (the CLI prints them and exits with code 2)."""

from __future__ import annotations


class IaaaError(ValueError):
    """Base class for errors about the user's input: a bad file, field, shape or option.

    The message names the thing at fault (path, field, shape) and what is wrong with it."""


class DataError(IaaaError, ValueError):
    """An input file or folder cannot be used as annotated data."""
