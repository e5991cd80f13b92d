"""A module imported on first use, so importing ``core`` does not import numba.

numba takes about 0.3 s to import (more on a cold disk). Most users of ``core.resample``/``core.morpho``/
``core.perturb`` call compiled kernels, but the explorer's first page and the plain reference path do
not, and the first page of a freshly started server should not wait for a compiler it does not use.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for the module ``name``: the first attribute read imports it (the import system's own
    per-module lock makes that safe from any thread) and keeps each attribute read for the next call."""

    def __init__(self, name: str):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str):  # only names not cached yet come here
        value = getattr(importlib.import_module(self._lazy_name), attr)
        self.__dict__[attr] = value  # one dict write: threads racing here store the same object
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


def lazy_module(name: str) -> ModuleType:
    """A stand-in for ``importlib.import_module(name)`` that imports on the first attribute read.

    ``tests/test_architecture.py`` reads ``lazy_module("core.x")`` calls as imports of ``core.x``.
    """
    return _LazyModule(name)  # type: ignore[return-value]
