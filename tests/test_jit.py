"""vigile.jit spares numba's optional probes (SciPy's BLAS, cffi) and nothing else."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import numpy as np
from vigile.ingest.packet import classify  # a kernel module: imports vigile.jit
classify._member(1, np.array([1]))  # numba's first call loads its registries
print(sorted(m for m in ("scipy.linalg", "cffi") if m in sys.modules))
import cffi
import scipy.linalg
print(type(cffi.FFI()).__name__, scipy.linalg.norm(np.array([3.0, 4.0])))
"""


def test_kernels_start_without_scipy_linalg_or_cffi_which_still_import_afterwards():
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=300
    ).stdout.splitlines()
    assert out == ["[]", "FFI 5.0"]
