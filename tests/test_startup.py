"""What every vigile process sets up before its libraries load."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BLAS = "import os, vigile, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"


@pytest.mark.parametrize(("chosen", "used"), [(None, "1"), ("4", "4")])
def test_openblas_starts_one_thread_unless_the_user_chose(chosen: str | None, used: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if chosen is not None:
        env["OPENBLAS_NUM_THREADS"] = chosen
    done = subprocess.run(
        [sys.executable, "-c", BLAS], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == used
