"""numba's ``njit`` for vigile's compiled kernels, without numba's optional start-up costs.

Every kernel module imports ``njit`` from here rather than from numba. The first time
numba compiles or loads a function it imports two modules that probe for optional
libraries no vigile kernel uses:

* ``numba.np.arraymath`` imports ``scipy.linalg`` only to learn whether a BLAS is there
  for ``np.dot`` and the like: in a process that reads a capture that import is about a
  third of the start-up (0.25 to 0.5 CPU-s here, through SciPy's array-API layer);
* ``numba.core.typing.cffi_utils`` imports ``cffi`` and builds an ``FFI`` (0.04 CPU-s)
  so that kernels could call cffi functions.

So each is imported here once with its optional library hidden, unless that library is
already loaded: numba records "no BLAS" (keeping its own loop for the few functions
that would have used one) and "no cffi"; nothing else changes, and both libraries
import normally afterwards (argon2 uses cffi).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from numba import njit

__all__ = ["njit"]


class _Hide(importlib.abc.MetaPathFinder):
    """Makes the import of ``name`` (and of its submodules) fail while installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ImportError(f"{fullname} is not needed by vigile's kernels")
        return None


def _import_without(module: str, hidden: str) -> None:
    """Import numba's ``module`` first, with ``hidden`` unavailable while it probes."""
    if hidden in sys.modules or module in sys.modules:
        return
    finder = _Hide(hidden)
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)


_import_without("numba.np.arraymath", "scipy.linalg")  # probes for BLAS once, now
_import_without("numba.core.typing.cffi_utils", "cffi")  # probes for cffi once, now
