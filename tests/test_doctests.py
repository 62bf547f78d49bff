"""The examples in the product's docstrings are run: every module of the package, so an
example added anywhere is checked (pytest's --doctest-modules covers tests/ only)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import vigile


def test_every_docstring_example_of_the_package_holds() -> None:
    attempted, failed = 0, []
    for info in pkgutil.walk_packages(vigile.__path__, "vigile."):
        if info.name.endswith("__main__") or info.name.startswith("vigile._kernels"):
            continue  # a script's entry point runs on import; the kernels are built code
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
        attempted += result.attempted
        if result.failed:
            failed.append(f"{info.name}: {result.failed} of {result.attempted}")
    assert not failed, failed
    assert attempted > 200  # the walk found the package's examples
