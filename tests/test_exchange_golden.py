"""Golden tests of the Exchange checks: inputs built from published patterns, findings reviewed.

Each case under tests/golden/exchange/ holds ``input/`` and ``expected.json`` side by
side; ``tests/golden/exchange/regen.py`` writes both (review the diff).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vigile.exchange import registered_checks

GOLDEN = Path(__file__).parent / "golden" / "exchange"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "expected.json").exists())


def _regen_module():
    spec = importlib.util.spec_from_file_location("exchange_regen", GOLDEN / "regen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", CASES)
def test_golden_case(case: str) -> None:
    expected = json.loads((GOLDEN / case / "expected.json").read_text(encoding="utf-8"))
    assert _regen_module().summarise(GOLDEN / case / "input") == expected


def test_every_registered_check_has_a_golden_finding() -> None:
    found = set()
    for case in CASES:
        expected = json.loads((GOLDEN / case / "expected.json").read_text(encoding="utf-8"))
        found |= {f["detector"] for f in expected["findings"]}
    names = {c.name for c in registered_checks()}
    assert names <= found, names - found


def test_negatives_stay_quiet() -> None:
    """Normal autodiscover, localhost probes and OWA logons produce no finding."""
    iis = json.loads((GOLDEN / "iis" / "expected.json").read_text(encoding="utf-8"))
    assert {f["src"] for f in iis["findings"]} == {
        "203.0.113.7", "203.0.113.8", "203.0.113.9", "66.249.66.1", "103.77.192.219",
        "198.51.100.20",
    }  # fmt: skip
    proxy = json.loads((GOLDEN / "httpproxy" / "expected.json").read_text(encoding="utf-8"))
    assert {f["src"] for f in proxy["findings"]} == {"203.0.113.7"}
    files = json.loads((GOLDEN / "files" / "expected.json").read_text(encoding="utf-8"))
    paths = {f["fqdn"] for f in files["findings"]}
    assert not any(p.endswith(("logon.aspx", "TimeoutLogoff.aspx")) for p in paths)


def test_inputs_are_what_regen_builds(tmp_path: Path) -> None:
    """The committed inputs are exactly what the pattern builders write (no hand edits)."""
    regen = _regen_module()
    for name, build in regen.CASES.items():
        build(tmp_path / name)
        for built in (p for p in (tmp_path / name).rglob("*") if p.is_file()):
            committed = GOLDEN / name / "input" / built.relative_to(tmp_path / name)
            assert committed.read_bytes() == built.read_bytes(), committed


def test_every_registered_check_is_documented_with_its_source() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "detections.md").read_text(encoding="utf-8")
    section = doc.split("## Exchange", 1)[1].split("\n## ", 1)[0]
    for check in registered_checks():
        row = next((line for line in section.splitlines() if f"`{check.name}`" in line), None)
        assert row is not None, f"{check.name} missing from docs/detections.md ## Exchange"
        for cited in check.source.split(";"):  # each source, by its first word
            assert cited.split()[0] in row, f"{check.name}: {cited!r} not cited in its row"
