"""numba's ``njit`` for vigile's compiled kernels, without numba's SciPy start-up cost.

Every kernel module imports ``njit`` from here rather than from numba. The first time
numba compiles or loads a function it imports ``numba.np.arraymath``, and that module
imports ``scipy.linalg`` only to learn whether a BLAS is there for ``np.dot`` and the
like. No vigile kernel uses them, and in a process that reads a capture that import is
about a third of the start-up (0.25 to 0.5 CPU-s here, through SciPy's array-API
layer). So, unless ``scipy.linalg`` is already loaded, ``numba.np.arraymath`` is
imported here once with ``scipy.linalg`` hidden: numba records "no BLAS" (and keeps
its own loop for the few functions that would have used it); nothing else changes,
and ``scipy.linalg`` imports normally afterwards.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from numba import njit

__all__ = ["njit"]


class _HideLinalg(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "scipy.linalg" or fullname.startswith("scipy.linalg."):
            raise ImportError(f"{fullname} is not needed by vigile's kernels")
        return None


if "scipy.linalg" not in sys.modules and "numba.np.arraymath" not in sys.modules:
    _finder = _HideLinalg()
    sys.meta_path.insert(0, _finder)
    try:
        import numba.np.arraymath  # noqa: F401  (probes for BLAS once, now)
    finally:
        sys.meta_path.remove(_finder)
