"""Shared fixtures.

Real third-party data lives in ``../shared/data`` beside the project (or where
``VIGILE_SHARED_DATA`` points). Tests that need it skip when it is missing on a
developer machine, and fail under ``CI=true``: CI must never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("VIGILE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; fails under CI when missing, else skips."""
    path = shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared test data missing at {path} (required under CI)")
        pytest.skip(f"shared test data not found at {path}")
    return path


def require_tool(name: str) -> str:
    """Path of an external program a test runs against; fail under CI when missing."""
    import shutil

    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return found
