"""The scan detector's golden file: input logs and expected findings side by side.

Regenerate with ``python tests/golden/detect/regenerate.py`` and review the diff. The
input holds scans just over Zeek's thresholds and traffic just under them (24 hosts
on one port, 14 ports of one host, 40 hosts spread over 20 minutes, resets after
payload), which must not be reported.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from vigile.detect import registered_detectors

GOLDEN = Path(__file__).parent / "golden" / "detect"

_spec = importlib.util.spec_from_file_location("regenerate_scan", GOLDEN / "regenerate.py")
assert _spec is not None and _spec.loader is not None
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)


def test_scan_matches_its_golden_file(tmp_path: Path) -> None:
    got = regenerate.findings_for("scan", GOLDEN / "scan" / "input", tmp_path / "g.duckdb")
    lines = (GOLDEN / "scan" / "expected.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(json.dumps(got)) == [json.loads(line) for line in lines]


def test_scan_reports_only_scanners_over_zeeks_thresholds(tmp_path: Path) -> None:
    got = regenerate.findings_for("scan", GOLDEN / "scan" / "input", tmp_path / "g.duckdb")
    by_src = {f["src"]: f for f in got}
    assert set(by_src) == {"10.0.0.40", "10.0.0.2", "198.51.100.66"}
    desktop = by_src["10.0.0.40"]
    assert desktop["dst"] is None and desktop["severity"] == "medium"
    assert desktop["evidence"]["kinds"] == ["address", "port"]
    assert by_src["10.0.0.2"]["score"] < 0.5  # the admin host's sanctioned scanner
    outside = by_src["198.51.100.66"]
    assert outside["dst"] == "10.0.0.22" and outside["severity"] == "low"


def test_scan_is_registered_like_any_detector() -> None:
    assert "scan" in {d.name for d in registered_detectors()}
