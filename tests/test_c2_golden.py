"""Golden files of the C2 detectors: input logs and expected findings side by side.

Regenerate with ``python tests/golden/detect/regenerate.py`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vigile.detect import registered_detectors

GOLDEN = Path(__file__).parent / "golden" / "detect"
C2_DETECTORS = ("beacon", "long_connection", "strobe", "dns_c2")

_spec = importlib.util.spec_from_file_location("regenerate", GOLDEN / "regenerate.py")
assert _spec is not None and _spec.loader is not None
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)


@pytest.mark.parametrize("name", C2_DETECTORS)
def test_detector_matches_its_golden_file(name: str, tmp_path: Path) -> None:
    got = regenerate.findings_for(name, GOLDEN / name / "input", tmp_path / "g.duckdb")
    lines = (GOLDEN / name / "expected.jsonl").read_text(encoding="utf-8").splitlines()
    want = [json.loads(line) for line in lines]
    assert want, "a golden file must hold at least one finding"
    assert json.loads(json.dumps(got)) == want


def test_every_c2_detector_is_registered_and_has_a_golden_folder() -> None:
    names = {d.name for d in registered_detectors()}
    for name in C2_DETECTORS:
        assert name in names
        assert (GOLDEN / name / "input").is_dir() and (GOLDEN / name / "expected.jsonl").is_file()
