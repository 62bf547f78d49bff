"""vigile.jitbuild: each kernel compiled once, by numba.pycc, with the return type inferred."""

from __future__ import annotations

import importlib.util
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import require_tool

from vigile import jit, jitbuild


@jit.njit(cache=False)
def _double(x):  # a helper: numba compiles it just in time when the kernel is typed
    return 2 * x


def _scale(values, factor):
    out = np.empty(values.size, np.int64)
    for i in range(values.size):
        out[i] = _double(values[i]) * factor
    return out, values.size


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(jit.LIBRARY, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:The 'pycc' module is pending deprecation")
def test_the_build_compiles_each_kernel_once_with_the_return_type_numba_infers(
    tmp_path: Path,
) -> None:
    require_tool(sysconfig.get_config_var("CC").split()[0])  # numba.pycc's C compiler
    kernel = jit._numba_njit()(nogil=True)(_scale)
    key = f"{__name__}:_scale"
    manifest = jitbuild.build(tmp_path, {key: (kernel, ["(int64[::1], int64)"])})
    assert kernel.signatures == []  # numba did not compile the kernel just in time
    assert manifest["exports"] == {
        key: [{"name": "k0", "args": [["a", "<i8", 1, "C", True], ["i"]]}]
    }
    assert manifest["fingerprint"] == jit.fingerprint() and manifest["machine"] == jit.machine()
    library = tmp_path / manifest["library"]
    assert library.stat().st_size == manifest["size"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([library.name, "_kernels.json"])

    values = np.arange(5, dtype=np.int64)
    out, size = _load(library).k0(values, 3)
    want_out, want_size = kernel(values, 3)  # just in time now, for comparison
    [compiled] = kernel.overloads.values()
    assert str(compiled.signature.return_type) == "Tuple(array(int64, 1d, C), int64)"
    assert out.dtype == want_out.dtype == np.int64 and out.flags.c_contiguous
    assert out.tolist() == want_out.tolist() == [0, 6, 12, 18, 24]
    assert type(size) is type(want_size) is int and size == want_size == 5
