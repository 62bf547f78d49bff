"""The scan detector's golden file: input logs and expected findings side by side.

Regenerate with ``python tests/golden/detect/regenerate.py`` and review the diff. The
input holds scans just over Zeek's thresholds and traffic just under them (24 hosts
on one port, 14 ports of one host, 40 hosts spread over 20 minutes, resets after
payload), which must not be reported; UDP scans (one logged the other way round by
Zeek) that must be, next to UDP clients that must not (a busy DNS client, an NTP
client, a QUIC browser, a recursive resolver, a traceroute); and TCP backscatter
(SYN/ACKs answering spoofed SYNs), which is nobody's scan.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert set(by_src) == {
        *("10.0.0.40", "10.0.0.2", "198.51.100.66"),
        *("10.0.0.50", "203.0.113.80", "198.51.100.77"),  # the UDP scanners
    }
    desktop = by_src["10.0.0.40"]
    assert desktop["dst"] is None and desktop["severity"] == "medium"
    assert desktop["evidence"]["kinds"] == ["address", "port"]
    assert by_src["10.0.0.2"]["score"] < 0.5  # the admin host's sanctioned scanner
    outside = by_src["198.51.100.66"]
    assert outside["dst"] == "10.0.0.22" and outside["severity"] == "low"


def test_scan_is_registered_like_any_detector() -> None:
    assert "scan" in {d.name for d in registered_detectors()}


def test_udp_port_and_address_scans_are_found(tmp_path: Path) -> None:
    got = regenerate.findings_for("scan", GOLDEN / "scan" / "input", tmp_path / "g.duckdb")
    by_src = {f["src"]: f for f in got}
    desktop = by_src["10.0.0.50"]  # 40 UDP ports of one server; DNS and NTP answered
    assert desktop["dst"] is None and desktop["severity"] == "medium"
    assert desktop["evidence"]["protocols"] == ["udp"] and desktop["evidence"]["kinds"] == ["port"]
    assert desktop["evidence"]["max_ports_on_one_host"] == 40
    sweep = by_src["203.0.113.80"]  # 60 hosts on 161/udp, 5 answered
    assert sweep["evidence"]["kinds"] == ["address"]
    assert sweep["evidence"]["max_hosts_on_one_port"] == 55
    assert "161/udp" in sweep["explanation"]


def test_the_prober_is_who_knocked_not_zeeks_originator(tmp_path: Path) -> None:
    got = regenerate.findings_for("scan", GOLDEN / "scan" / "input", tmp_path / "g.duckdb")
    pairs = {(f["src"], f["dst"]) for f in got}
    # Probes from source port 53 are logged with the scanner as responder.
    assert ("198.51.100.77", "10.0.0.23") in pairs
    assert "10.0.0.23" not in {f["src"] for f in got}
    # Backscatter: SYN/ACKs nobody here sent a SYN for blame neither end.
    assert not {"10.0.0.24", "10.0.0.25", "192.0.2.200"} & {f["src"] for f in got}


def test_udp_clients_are_not_scanners(tmp_path: Path) -> None:
    got = regenerate.findings_for("scan", GOLDEN / "scan" / "input", tmp_path / "g.duckdb")
    clients = {"10.0.0.60", "10.0.0.61", "10.0.0.62", "10.0.0.53", "10.0.0.63"}
    assert not clients & {f["src"] for f in got}


def _golden_scan_with(tmp_path: Path, settings: str) -> list[dict]:
    """The scan detector's findings on the golden input with ``[detectors.scan]`` set."""
    folder = tmp_path / "input"
    shutil.copytree(GOLDEN / "scan" / "input", folder)
    with (folder / "vigile.toml").open("a", encoding="utf-8") as f:
        f.write(f"\n[detectors.scan]\n{settings}\n")
    return regenerate.findings_for("scan", folder, tmp_path / "g.duckdb")


def test_the_unanswered_share_is_what_spares_the_resolver(tmp_path: Path) -> None:
    got = _golden_scan_with(tmp_path, "udp_min_unanswered_share = 0.0")
    (resolver,) = [f for f in got if f["src"] == "10.0.0.53"]
    assert resolver["evidence"]["max_hosts_on_one_port"] == 30
    assert resolver["evidence"]["thresholds"]["udp_min_unanswered_share"] == 0.0


def test_udp_thresholds_come_from_the_config(tmp_path: Path) -> None:
    got = _golden_scan_with(tmp_path, "udp_port_threshold = 41\nudp_addr_threshold = 56")
    assert not {"10.0.0.50", "203.0.113.80", "198.51.100.77"} & {f["src"] for f in got}
    assert "10.0.0.40" in {f["src"] for f in got}  # TCP keeps its own thresholds


@settings(max_examples=15)
@given(
    hosts=st.integers(1, 40),
    ports=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_turning_udp_probes_around_as_zeek_does_changes_nothing(
    hosts: int, ports: int, seed: int
) -> None:
    """A probe logged as ``S0`` (scanner first) or as ``SHR`` with the ends swapped and
    history ``^d`` (Zeek's guess from the ports) is the same probe, counted the same."""
    rng = np.random.default_rng(seed)
    flips = rng.random(hosts * ports) < 0.5
    plain, turned = [], []
    for i, (h, p) in enumerate((h, p) for h in range(hosts) for p in range(ports)):
        args = (regenerate.T0 + i / 10, "203.0.113.9", 53, f"10.0.9.{h + 1}", 1000 + p)
        plain.append(regenerate._udp(*args, "S0"))
        ts, scanner, sport, target, port = args
        row = regenerate._udp(ts, target, port, scanner, sport, "SHR")
        turned.append(row if flips[i] else plain[-1])
    got = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("plain", plain), ("turned", turned)):
            folder = Path(tmp) / name
            regenerate._write(folder / "conn.log", "conn", regenerate.CONN_FIELDS, rows)
            (folder / "vigile.toml").write_text('[network]\ninternal = ["10.0.0.0/8"]\n')
            found = regenerate.findings_for("scan", folder, Path(tmp) / f"{name}.duckdb")
            got.append([(f["src"], f["dst"], f["evidence"]) for f in found])
    assert got[0] == got[1]
    assert bool(got[0]) == (hosts >= 25 or ports >= 15)
