"""Every name in iaaa.__all__ resolves and is documented."""

import importlib

import iaaa


def test_public_names_resolve_and_have_docstrings():
    for name in iaaa.__all__:
        obj = getattr(iaaa, name)
        if name not in ("__version__", "SPACE", "TABLE_S1", "EXTENDED"):  # data tables document themselves in iaaa.ops
            assert (obj.__doc__ or "").strip(), f"iaaa.{name} has no docstring"


def test_subpackages_as_attributes():
    assert iaaa.ops is importlib.import_module("iaaa.ops")
    assert hasattr(iaaa.ops, "Rotate") and hasattr(iaaa.policy, "PolicySet")
