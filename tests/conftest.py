"""Shared fixtures.

Real third-party data lives in ``../shared/data`` beside the project (or where
``VIGILE_SHARED_DATA`` points). Tests that need it skip when it is missing on a
developer machine, and fail under ``CI=true``: CI must never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# No time limit per example: the suite runs on two cores shared with other work, where a
# first call that loads compiled code, or a busy neighbour, can make one example slow.
# Speed is measured by bench/, never asserted by a test (Hypothesis's default deadline
# of 200 ms would be such an assertion, failing as "Flaky" when the rerun is quick).
settings.register_profile("vigile", deadline=None)
settings.load_profile("vigile")
# The deep run (``pytest --hypothesis-profile=deep``, or ``VIGILE_HYPOTHESIS_PROFILE=deep``):
# every property test tries DEEP_FACTOR times its usual number of examples. Tests state
# their own ``max_examples`` (sized for ``make test``), which a profile cannot override, so
# the hook below scales each test's settings.
DEEP_FACTOR = int(os.environ.get("VIGILE_DEEP_FACTOR", "30"))
settings.register_profile("deep", deadline=None, print_blob=True)
if os.environ.get("VIGILE_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["VIGILE_HYPOTHESIS_PROFILE"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the deep profile, run only the property tests, each with ``DEEP_FACTOR``
    times its ``max_examples``."""
    profile = config.getoption("hypothesis_profile", None) or os.environ.get(
        "VIGILE_HYPOTHESIS_PROFILE"
    )
    if profile != "deep":
        return
    kept, others = [], []
    for item in items:
        test = getattr(item, "obj", None)
        # Hypothesis reads the settings from this attribute each time the test runs.
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if current is None:
            others.append(item)
            continue
        test._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
            current, max_examples=current.max_examples * DEEP_FACTOR, deadline=None
        )
        kept.append(item)
    config.hook.pytest_deselected(items=others)
    items[:] = kept


def missing(reason: str, hint: str = "") -> NoReturn:
    """Stop a test whose requirement is missing: fail under ``CI=true`` (CI must never
    pass by skipping), skip elsewhere. ``hint`` is added to the failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}{hint}")
    pytest.skip(reason)


def shared_data_dir() -> Path:
    return Path(os.environ.get("VIGILE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; fails under CI when missing, else skips."""
    path = shared_data_dir()
    if not path.is_dir():
        missing(f"shared test data not found at {path}", " (required under CI)")
    return path


def require_tool(name: str) -> str:
    """Path of an external program a test runs against; fail under CI when missing."""
    import shutil

    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed", " (.ci/run installs it)")
    return found
