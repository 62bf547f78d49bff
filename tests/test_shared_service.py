"""Significance, shared services, monitoring and one-session keep-alives (the hunt passes
that explain periodic benign traffic), on simulated and real traffic and hand-made cases."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigile.config import Config, Network, load_config
from vigile.detect import Detector, Finding, HuntContext, default_window, registered_detectors
from vigile.detect.beacon import BeaconDetector
from vigile.detect.shared_service import FACTOR, NetworkView, _fan_in, _fan_out
from vigile.detect.significance import (
    NOT_SIGNIFICANT_CAP,
    SIGNIFICANCE_LEVEL,
    cap_insignificant_beacons,
)
from vigile.hunt import run_detectors
from vigile.ingest import ingest_paths
from vigile.store import Window
from vigile.store.duckdb import DuckDBStore

W = datetime(2026, 3, 2, tzinfo=UTC)


def _hunt(data: Path, config: Path, detectors: list[type[Detector]] | None = None) -> list[Finding]:
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [data])
        cfg = load_config(config)
        ctx = HuntContext(store, cfg, default_window(store, 24 * 30))
        return run_detectors(ctx, detectors or registered_detectors())
    finally:
        store.close()


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    """Eight desktops for one day, one of them beaconing over HTTPS (a scenario)."""
    out = tmp_path_factory.mktemp("office") / "run"
    args = ["simulate", "--out", str(out), "--seed", "11", "--days", "1", "--hosts", "8"]
    args += ["--scenario", "https_beacon:host=3,start_day=0.1"]
    subprocess.run([sys.executable, "-m", "vigile", *args], check=True, capture_output=True)
    return _hunt(out, out / "vigile.toml")


def test_desktops_polling_one_service_are_a_shared_service(office: list[Finding]) -> None:
    mail = [f for f in office if f.detector == "beacon" and f.fqdn == "mail.corp.example"]
    assert len(mail) >= 6
    for f in mail:
        shared = f.evidence["shared_service"]
        assert shared["kind"] == "shared service"
        assert shared["members"] >= 6 and shared["peer_group"] == 8
        assert f.score == pytest.approx(shared["score_before"] * FACTOR, abs=1e-4)
        assert f.score < 0.5 and "Lowered (shared service:" in f.explanation


def test_the_monitoring_server_polling_bmcs_is_monitoring(office: list[Finding]) -> None:
    polls = [f for f in office if f.detector == "beacon" and f.evidence.get("dst_port") == 623]
    assert len(polls) == 5
    for f in polls:
        assert f.evidence["shared_service"]["kind"] == "monitoring"
        assert "admin host" in f.evidence["shared_service"]["reason"]


def test_the_hidden_beacon_keeps_its_score(office: list[Finding]) -> None:
    beacons = [f for f in office if f.detector == "beacon" and not f.suppressed_by]
    alerts = [f for f in beacons if f.score >= 0.5]
    [hidden] = [f for f in alerts if f.fqdn == "cdn.static-assets-cache.net"]
    assert "shared_service" not in hidden.evidence and hidden.score >= 0.9
    # What stays loud is periodic traffic no other host shares with the same rhythm
    # (here, one desktop's token refreshes): the pass lowers patterns, not names.
    for f in alerts:
        peers = {g.src for g in beacons if g.fqdn == f.fqdn and g.dst == f.dst}
        assert peers == {f.src}


def _finding(src: str, dst: str, period: float | None, detector: str = "beacon") -> Finding:
    ev = {"period_s": period, "proto": "tcp", "dst_port": 443}
    return Finding(detector, src, dst, None, 0.9, W, W, "x.", ev)


def _view(classes: dict[str, str], admin: bool = False) -> NetworkView:
    admins = (ipaddress.ip_network("10.9.9.9/32"),) if admin else ()
    cfg = Config(Network((ipaddress.ip_network("10.0.0.0/8"),), admin_hosts=admins))
    ctx = HuntContext(DuckDBStore(":memory:"), cfg, Window())
    active: dict[str, int] = {}
    for c in classes.values():
        active[c] = active.get(c, 0) + 1
    return NetworkView(ctx, cfg.network.is_internal, dict(classes), active)


def test_fan_in_needs_half_the_peer_group_and_the_same_rhythm() -> None:
    desktops = {f"10.0.0.{i}": "workstation" for i in range(1, 11)}
    view = _view(desktops)
    key = ("beacon", "address", "1.2.3.4", "tcp", 443)
    five = [_finding(f"10.0.0.{i}", "1.2.3.4", 300) for i in range(1, 6)]
    [(verdict, members)] = _fan_in(view, key, five, set())
    assert (verdict["members"], verdict["peer_group"], len(members)) == (5, 10, 5)
    assert _fan_in(view, key, five[:4], set()) == []  # 4 of 10: below half
    assert _fan_in(view, key, five, {"1.2.3.4"}) == []  # new destination: an outbreak
    odd = [*five[:4], _finding("10.0.0.5", "1.2.3.4", 60)]
    assert _fan_in(view, key, odd, set()) == []  # one source keeps another rhythm


def test_fan_in_from_outside_needs_a_serving_host() -> None:
    view = _view({"10.0.0.1": "server", "10.0.0.2": "workstation"})
    clients = [_finding(f"8.8.8.{i}", "10.0.0.1", None, "long_connection") for i in range(3)]
    [(verdict, _)] = _fan_in(view, ("long_connection", "address", "10.0.0.1"), clients, set())
    assert verdict["kind"] == "served clients"
    to_desktop = [_finding(f"8.8.8.{i}", "10.0.0.2", None, "long_connection") for i in range(3)]
    assert _fan_in(view, ("long_connection", "address", "10.0.0.2"), to_desktop, set()) == []


def test_fan_out_is_monitoring_only_from_a_server_and_bmcs_only_from_admin_hosts() -> None:
    bmcs = {f"10.1.0.{i}": "bmc" for i in range(1, 4)}
    polls = [_finding("10.9.9.9", b, 300) for b in bmcs]
    key = ("beacon", "10.9.9.9", "udp", 623, "bmc")
    assert _fan_out(_view({**bmcs, "10.9.9.9": "server"}), key, polls)[1] == []
    verdict, members = _fan_out(_view({**bmcs, "10.9.9.9": "server"}, admin=True), key, polls)
    assert verdict["kind"] == "monitoring" and len(members) == 3
    desk = _view({**bmcs, "10.9.9.9": "workstation"}, admin=True)
    assert _fan_out(desk, key, polls)[1] == []  # a desktop polling BMCs is no monitoring


def test_keepalives_of_one_session_are_capped_not_dropped(
    shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / "zeek" / "stratosphere" / "008-zeek-mixed" / "data"
    cfg = tmp_path / "vigile.toml"
    cfg.write_text('[network]\ninternal = ["147.32.81.167/32"]\n')
    found = _hunt(data, cfg, [BeaconDetector])
    [wns] = [f for f in found if f.detector == "beacon" and f.dst == "20.199.120.151"]
    session = wns.evidence["single_session"]
    assert (session["records"], session["src_port"], session["records_with_handshake"]) == (
        49,
        52756,
        0,
    )
    assert session["score_before"] >= 0.75 and wns.score == 0.6 and wns.severity == "medium"
    # ESET's push channel is another such session (suppressed by a prior as well)
    capped = {f.dst for f in found if "single_session" in f.evidence}
    assert capped == {"20.199.120.151", "91.228.167.171"}


def test_a_beacon_of_new_connections_is_not_capped(shared_data: Path, tmp_path: Path) -> None:
    data = shared_data / "zeek" / "rita" / "missing_host"
    cfg = tmp_path / "vigile.toml"
    cfg.write_text('[network]\ninternal = ["64.225.56.201/32"]\n')
    found = _hunt(data, cfg, [BeaconDetector])
    [beacon] = [f for f in found if f.detector == "beacon" and f.src == "73.54.23.243"]
    assert "single_session" not in beacon.evidence and beacon.score >= 0.9


def test_a_rhythm_chance_explains_is_capped_at_low(office: list[Finding]) -> None:
    beacons = [f for f in office if f.detector == "beacon"]
    loose = [f for f in beacons if f.evidence["p_value"] > SIGNIFICANCE_LEVEL]
    assert loose and all(f.score <= NOT_SIGNIFICANT_CAP for f in loose)
    capped = [f for f in loose if "not_significant" in f.evidence]
    assert all(f.evidence["not_significant"]["score_before"] > f.score for f in capped)
    [hidden] = [f for f in beacons if f.fqdn == "cdn.static-assets-cache.net"]
    assert hidden.evidence["p_value"] < 1e-6 and "not_significant" not in hidden.evidence


def test_significance_cap_keeps_the_finding_and_says_why() -> None:
    loose = Finding("beacon", "10.0.0.1", "1.2.3.4", None, 0.58, W, W, "x.", {"p_value": 0.33})
    tight = Finding("beacon", "10.0.0.1", "1.2.3.5", None, 0.58, W, W, "x.", {"p_value": 0.01})
    other = Finding("exfil", "10.0.0.1", "1.2.3.6", None, 0.8, W, W, "x.", {"p_value": 0.5})
    ctx = HuntContext(DuckDBStore(":memory:"), Config(), Window())
    kept = cap_insignificant_beacons(ctx, [loose, tight, other])
    assert kept == [loose, tight, other]
    assert (loose.score, loose.severity) == (NOT_SIGNIFICANT_CAP, "low")
    assert "not significant (p = 0.33" in loose.explanation
    assert (tight.score, other.score) == (0.58, 0.8)


def test_desktops_polling_a_desktop_are_no_shared_service() -> None:
    hosts = {f"10.0.0.{i}": "workstation" for i in range(1, 6)}
    view = _view(hosts)
    polls = [_finding(f"10.0.0.{i}", "10.0.0.5", 300) for i in range(1, 5)]
    assert _fan_in(view, ("beacon", "address", "10.0.0.5", "tcp", 445), polls, set()) == []
    served = _view({**hosts, "10.0.0.5": "server"})
    assert _fan_in(served, ("beacon", "address", "10.0.0.5", "tcp", 445), polls, set())
