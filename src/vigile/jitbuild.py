"""Compile vigile's kernels ahead of time: ``python -m vigile.jitbuild`` (run by ``make``).

Imports every module of :data:`vigile.jit.KERNEL_PACKAGES` with the kernels just in time,
compiles each kernel that declares ``aot`` argument types for each of them with numba's
ahead-of-time compiler (:mod:`numba.pycc`) into the extension module ``vigile._kernels``,
then writes the manifest that :mod:`vigile.jit` checks before using it (see there).

Each kernel is compiled once, by numba.pycc, from its argument types alone: numba.pycc
passes an export's return type to numba's compiler, which infers it when there is none,
as it does just in time (tests/test_jitbuild.py checks that the build compiles no kernel
just in time and that the exports return what numba infers). The helpers a kernel calls
are compiled by numba just in time as the kernel is typed (that is how numba links a call
to another compiled function) and kept in numba's cache for later builds.

Two choices differ from numba.pycc's defaults, to match what the just-in-time kernels do:
the exports release the GIL while they run (the kernels are declared ``nogil``, and the
pair grouping of :mod:`vigile.detect.pairs` runs them on several threads), and the code
is compiled for the CPU of the machine that builds it (as numba's own cache is); the
manifest records that CPU and :mod:`vigile.jit` does not load the library on another.
The manifest is removed first and written last, so an interrupted build leaves kernels
just in time, never a library that does not match its sources. A build that fails (no C
compiler or no Python headers, which :mod:`numba.pycc` needs) says so and exits 0: vigile
then runs every kernel just in time.
"""

from __future__ import annotations

import os

os.environ["VIGILE_JIT"] = "1"  # before vigile.jit is imported: every kernel a dispatcher

import importlib
import itertools
import json
import pkgutil
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np

from vigile import jit


def _spec(ty: Any) -> jit.Spec:
    """What :func:`vigile.jit._fits` checks for an argument of numba type ``ty``."""
    from numba.core import types

    if isinstance(ty, types.Array):
        return ["a", np.dtype(str(ty.dtype)).str, ty.ndim, ty.layout, bool(ty.mutable)]
    if isinstance(ty, types.Boolean):
        return ["b"]
    if isinstance(ty, types.Integer):
        return ["i"]
    if isinstance(ty, types.Float):
        return ["f"]
    if isinstance(ty, types.BaseTuple):
        return ["t", [_spec(t) for t in cast(Any, ty).types]]
    raise TypeError(f"no ahead-of-time export for an argument of type {ty}")


def _import_kernels() -> None:
    for package in jit.KERNEL_PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__, package + "."):
            importlib.import_module(info.name)


def build(
    out: Path = jit.HERE, kernels: Mapping[str, tuple[Any, Sequence[str]]] | None = None
) -> dict[str, Any]:
    """Compile the kernels into ``out``; returns the manifest written.

    Args:
        out: The folder for the library and its manifest.
        kernels: numba dispatchers and their ``aot`` argument types by "module:qualname";
            by default every kernel of :data:`vigile.jit.KERNEL_PACKAGES`.
    """
    from llvmlite import binding
    from numba.core.compiler import Flags
    from numba.core.sigutils import normalize_signature
    from numba.pycc import CC, compiler

    class _ReleaseGil(Flags):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True  # type: ignore[assignment]

    manifest_path = out / f"{jit.LIBRARY}.json"
    manifest_path.unlink(missing_ok=True)
    if kernels is None:
        _import_kernels()
        kernels = jit.REGISTRY
    cc = CC(jit.LIBRARY)
    # Compiled aside, then renamed into place: a process that has the old library
    # loaded keeps its file.
    work = Path(tempfile.mkdtemp(prefix=".kernels-", dir=out))
    cc.output_dir = str(work)
    cc.target_cpu = binding.get_host_cpu_name()
    exports: dict[str, list[dict[str, Any]]] = {}
    names = (f"k{n}" for n in itertools.count())
    for key, (dispatcher, signatures) in sorted(kernels.items()):
        for text in signatures:
            args, _ = normalize_signature(text)
            name = next(names)
            cc.export(name, text)(dispatcher.py_func)  # no return type: numba infers it
            exports.setdefault(key, []).append({"name": name, "args": [_spec(a) for a in args]})
    original = compiler.Flags
    compiler.Flags = _ReleaseGil  # type: ignore[misc]  # pycc's one Flags(): _cull_exports
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # numba's C runtime for the module (modulemixin.c and the rest, 3 CPU-s of gcc)
            # does not depend on the kernels: compiled on another core while numba
            # compiles them, where cc.compile() would compile it after.
            runtime = pool.submit(cc._compile_mixins, str(work / "runtime"))
            cc._compile_mixins = lambda build_dir: runtime.result()  # type: ignore[method-assign]
            cc.compile()
        built = next(work.glob(f"{jit.LIBRARY}.*.so"))
        library = out / built.name
        built.replace(library)
    finally:
        compiler.Flags = original  # type: ignore[misc]
        shutil.rmtree(work, ignore_errors=True)
    manifest = {
        "fingerprint": jit.fingerprint(),
        "cpu": cc.target_cpu,
        "machine": jit.machine(),
        "library": library.name,
        "size": library.stat().st_size,
        "exports": exports,
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(manifest_path)
    return manifest


def main(argv: list[str]) -> int:
    if argv:
        print("usage: python -m vigile.jitbuild", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        manifest = build()
    except Exception as e:  # no C compiler, no Python headers, ...: vigile still runs
        print(
            f"kernels not compiled ahead of time ({type(e).__name__}: {e}); "
            "numba will compile them on first use",
            file=sys.stderr,
        )
        return 0
    count = sum(map(len, manifest["exports"].values()))
    print(
        f"compiled {count} kernel exports for {manifest['cpu']} into {manifest['library']} "
        f"in {time.monotonic() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
