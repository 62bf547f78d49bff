"""Golden captures: link types and tunnels the shared captures lack.

Each ``tests/golden/pcap/<name>`` capture sits beside ``<name>.json``, the rows vigile
is expected to read from it (regenerate both with ``regenerate.py`` there and review
the diff). tshark checks the same captures flow by flow, so the expected rows are
not only vigile's own word.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import pytest

from test_pcap_tshark import tshark_flows, tshark_frames, vigile_flows

GOLDEN = Path(__file__).parent / "golden" / "pcap"
CAPTURES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".pcap", ".pcapng"))


@functools.cache
def regenerate():  # the script is not a package module: load it from its file
    spec = importlib.util.spec_from_file_location("regenerate", GOLDEN / "regenerate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_capture_is_generated() -> None:
    assert sorted(regenerate().captures()) == [p.name for p in CAPTURES]


@functools.cache
def captures() -> dict[str, bytes]:
    return regenerate().captures()


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_rows_match_golden(path: Path) -> None:
    assert path.read_bytes() == captures()[path.name]
    expected = json.loads(path.with_suffix(".json").read_text())
    assert json.loads(json.dumps(regenerate().expected(path))) == expected


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_golden_flows_match_tshark(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    assert vigile_flows(expected["conn"]) == tshark_flows(tshark_frames(path))
    frames = tshark_frames(path)
    names = {v for fr in frames for v in fr["dns.qry.name"]}
    assert {r["query"] for r in expected.get("dns", [])} == names
    hosts = {v for fr in frames for v in fr["http.host"]}
    assert {r["host"] for r in expected.get("http", [])} == hosts
