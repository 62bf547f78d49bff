"""vigile's compiled kernels: numba's ``njit``, and the same kernels compiled ahead of time.

Every kernel module imports ``njit`` from here rather than from numba. A kernel that
Python code calls declares the argument types of those calls with ``aot=`` (numba
signature strings, without a return type); the helpers they call declare nothing.

Two ways to run the kernels:

* **Ahead of time**, once built: ``python -m vigile.jitbuild`` (run by ``make``) compiles
  every kernel that declares ``aot`` types into the extension module ``vigile._kernels``
  with numba's ahead-of-time compiler (:mod:`numba.pycc`, the same compiler as the
  just-in-time one), then writes the manifest ``_kernels.json`` beside it: a fingerprint
  of the kernels' sources and each export's argument types. A process that finds both,
  with a fingerprint that matches its sources, calls the exports and does not import
  numba at all. numba's import and its first load of cached machine code cost about
  0.45 CPU-s of every process that runs a kernel: `vigile ingest` of a one-packet capture
  takes 0.50 s instead of 0.95 (docs/benchmarks.md).
* **Just in time** otherwise (not built, kernel sources changed since the build, or
  ``VIGILE_JIT=1`` in the environment): numba compiles each kernel on its first call and
  caches the machine code in ``__pycache__``.

An export reads its arguments' memory exactly as declared and checks nothing, so a call
reaches it only if every argument fits the declared types (dtype, dimensions, layout, and
a writable array where the kernel may write). Any other call, and any call of a helper
from Python, goes to the just-in-time kernel, compiled then (numba imported on first
need): the results are the same, only the first such call is slow.

When numba is imported, two modules it imports on its first compilation probe for
optional libraries no vigile kernel uses, and they are imported here first with those
libraries hidden (unless already loaded): ``numba.np.arraymath`` imports ``scipy.linalg``
only to learn whether a BLAS is there (0.25 to 0.5 CPU-s through SciPy's array-API
layer), and ``numba.core.typing.cffi_utils`` builds a cffi ``FFI`` (0.04 CPU-s). numba
then records "no BLAS" and "no cffi"; both libraries import normally afterwards.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

__all__ = ["njit", "status"]

F = TypeVar("F", bound=Callable[..., Any])

#: Set (to anything but "") to run every kernel just in time.
ENV_JIT = "VIGILE_JIT"
#: The packages whose modules hold kernels; their sources make the fingerprint.
KERNEL_PACKAGES = ("vigile.ingest.packet", "vigile.detect")
LIBRARY = "_kernels"
HERE = Path(__file__).resolve().parent

Spec = list[Any]  # an argument's declared type, see _spec() and _fits()


def fingerprint() -> str:
    """A digest of the kernels' sources (and this module's) and of the Python version."""
    root = HERE
    digest = hashlib.blake2b(digest_size=16)
    digest.update(sys.implementation.cache_tag.encode())
    files = [root / "jit.py"]
    for package in KERNEL_PACKAGES:
        files += sorted((root / package.split(".", 1)[1].replace(".", "/")).glob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def machine() -> str:
    """The CPU that compiled code is for: a digest of the first CPU's model and features."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        import platform

        first = f"{platform.machine()} {platform.processor()}"
    keys = ("vendor_id", "model name", "flags", "CPU implementer", "CPU part", "Features")
    lines = [line for line in first.splitlines() if line.split(":", 1)[0].strip() in keys]
    return hashlib.blake2b("\n".join(lines or [first]).encode(), digest_size=8).hexdigest()


def _load(root: Path = HERE) -> tuple[ModuleType | None, dict[str, Any], str]:
    """The built library and its exports by kernel, or None and why it is not used."""
    if os.environ.get(ENV_JIT):
        return None, {}, f"{ENV_JIT} is set"
    rebuild = "(python -m vigile.jitbuild)"
    try:
        manifest = json.loads((root / f"{LIBRARY}.json").read_text())
    except (OSError, ValueError):
        return None, {}, f"not built {rebuild}"
    try:
        library = root / manifest["library"]
        if not library.is_file() or library.stat().st_size != manifest["size"]:
            return None, {}, f"the library does not match its manifest {rebuild}"
        if manifest["machine"] != machine():
            return None, {}, f"built on another CPU {rebuild}"
        if manifest["fingerprint"] != fingerprint():
            return None, {}, f"kernel sources changed since the build {rebuild}"
    except (KeyError, TypeError):
        return None, {}, f"the manifest is not one this vigile wrote {rebuild}"
    try:
        module = importlib.import_module(f"vigile.{LIBRARY}")
    except ImportError as e:
        return None, {}, f"the library does not load: {e}"
    return module, manifest["exports"], "ahead of time"


_LIBRARY, _EXPORTS, _STATUS = _load()


def status() -> str:
    """How kernels run in this process: "ahead of time", or why just in time."""
    return _STATUS


def _fits(value: object, spec: Spec) -> bool:
    """Whether ``value`` is what an export declared for this argument."""
    kind = spec[0]
    if kind == "a":
        _, dtype, ndim, layout, mutable = spec
        return (
            isinstance(value, np.ndarray)
            and value.dtype.str == dtype
            and value.ndim == ndim
            and bool(value.flags.aligned)
            and (layout != "C" or bool(value.flags.c_contiguous))
            and (layout != "F" or bool(value.flags.f_contiguous))
            and (not mutable or bool(value.flags.writeable))
        )
    if kind == "i":
        return isinstance(value, int | np.integer)
    if kind == "b":
        return isinstance(value, bool | np.bool_)
    if kind == "f":
        return isinstance(value, float | int | np.floating | np.integer)
    if kind == "t":
        items = spec[1]
        return (
            isinstance(value, tuple)
            and len(value) == len(items)
            and all(_fits(v, s) for v, s in zip(value, items, strict=True))
        )
    return False


class _Lazy:
    """A kernel that numba compiles on its first call from Python."""

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = func
        self.__name__, self.__qualname__ = func.__name__, func.__qualname__
        self.__module__, self.__doc__ = func.__module__, func.__doc__
        self._options = options
        self._dispatcher: Any = None

    def dispatcher(self) -> Any:
        """numba's dispatcher for this kernel (numba imported and set up on first need)."""
        if self._dispatcher is None:
            self._dispatcher = _numba_njit()(**self._options)(self.py_func)
        return self._dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.dispatcher()(*args, **kwargs)


class _Exported(_Lazy):
    """A kernel compiled ahead of time, for calls whose arguments fit an export."""

    def __init__(
        self, func: Callable[..., Any], options: dict[str, Any], exports: list[tuple[Any, Spec]]
    ) -> None:
        super().__init__(func, options)
        self._exports = exports

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs:
            for export, specs in self._exports:
                if len(args) == len(specs) and all(map(_fits, args, specs)):
                    return export(*args)
        return self.dispatcher()(*args, **kwargs)


#: Kernels with declared types, by "module:qualname" (filled while just in time).
REGISTRY: dict[str, tuple[Any, tuple[str, ...]]] = {}


def njit(
    *, cache: bool = True, nogil: bool = True, aot: Sequence[str] = (), inline: bool = False
) -> Callable[[F], F]:
    """numba's ``njit(cache=..., nogil=...)``; ``aot``: the argument types of Python's calls.

    ``inline``: a helper that numba inlines into every kernel calling it
    (``inline="always"``), for small helpers called per packet with array arguments:
    a call that is not inlined takes a reference on each array argument and gives it
    back (``NRT_incref``/``NRT_decref``, an atomic operation each), which LLVM cannot
    remove; inlined, numba's reference-count pruning removes the pairs.

    >>> @njit(cache=False, aot=("(int64,)",))
    ... def twice(x):
    ...     return 2 * x
    >>> twice(21)
    42
    """
    options: dict[str, Any] = {"cache": cache, "nogil": nogil}
    if inline:
        options["inline"] = "always"

    def decorate(func: F) -> F:
        key = f"{func.__module__}:{func.__qualname__}"
        if _LIBRARY is not None:
            exports = [(getattr(_LIBRARY, e["name"]), e["args"]) for e in _EXPORTS.get(key, ())]
            made = _Exported(func, options, exports) if exports else _Lazy(func, options)
            return made  # type: ignore[return-value]
        dispatcher = _numba_njit()(**options)(func)
        if aot:
            REGISTRY[key] = (dispatcher, tuple(aot))
        return dispatcher

    return decorate


_numba_ready = False


def _numba_njit() -> Callable[..., Any]:
    """numba's ``njit``, numba set up for vigile first (see the module docstring)."""
    global _numba_ready
    if not _numba_ready:
        _numba_ready = True
        _import_without("numba.np.arraymath", "scipy.linalg")  # probes for BLAS once, now
        _import_without("numba.core.typing.cffi_utils", "cffi")  # probes for cffi once, now
        from numba.core import types
        from numba.extending import typeof_impl

        # A kernel that calls a helper finds it as a module global: when ahead-of-time
        # kernels are loaded that global is a _Lazy, which numba must see as the helper's
        # dispatcher to compile the call.
        @typeof_impl.register(_Lazy)
        def _typeof_lazy(value: _Lazy, context: Any) -> Any:
            return types.Dispatcher(value.dispatcher())

    from numba import njit as numba_njit

    return numba_njit


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
