"""Internet scanners on a real capture: `scan` and `role_violation` side by side.

Stratosphere CTU-Normal-40 day 1 (``008-zeek-mixed``): hundreds of outside addresses
knock on the management ports of one host, and nothing answers them. The two
detectors must complement each other (slow probes with `role_violation`, Zeek-style
sweeps with `scan`, combined in the pair score) and keep each scanner below the alert
line; one summary per probed host says medium. One source also sweeps 27 UDP ports of
the host in half a minute (the capture's labels call its 35 flows
``Malicious External-Attack-to-Device``): a UDP port scan.
"""

from __future__ import annotations

from pathlib import Path

from vigile.config import load_config
from vigile.detect import HuntContext, default_window, registered_detectors
from vigile.hunt import run_detectors
from vigile.ingest import ingest_paths
from vigile.store import Window
from vigile.store.duckdb import DuckDBStore

HOST = "147.32.81.167"
SWEEPER = "104.156.155.13"  # failed on 816 ports of the host, 18 in one 5-minute epoch
UDP_SWEEPER = "104.152.52.193"  # 27 UDP ports (and 8 TCP) of the host, unanswered


def test_scanners_on_008_surface_together_without_alerting(
    shared_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "vigile.toml").write_text(f'[network]\ninternal = ["{HOST}/32"]\n')
    config = load_config(tmp_path / "vigile.toml")
    detectors = [d for d in registered_detectors() if d.name in ("role_violation", "scan")]
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [shared_data / "zeek/stratosphere/008-zeek-mixed/data"])
        ctx = HuntContext(store, config, default_window(store, config.window_hours))
        found = run_detectors(ctx, detectors)
    finally:
        store.close()
    scans = {f.src: f for f in found if f.detector == "scan"}
    assert {(f.src, f.dst) for f in scans.values()} == {(SWEEPER, HOST), (UDP_SWEEPER, HOST)}
    tcp = scans[SWEEPER].evidence
    assert tcp["kinds"] == ["port"] and tcp["protocols"] == ["tcp"]
    assert tcp["distinct_ports"] > 800
    udp = scans[UDP_SWEEPER].evidence
    assert udp["kinds"] == ["port"] and udp["protocols"] == ["udp"]
    assert udp["max_ports_on_one_host"] == 27
    (summary,) = [f for f in found if f.evidence.get("check") == "management probed"]
    assert summary.src == HOST and summary.evidence["sources"] >= 100
    probes = [f for f in found if f.evidence.get("check") == "inbound management"]
    assert len(probes) >= 100 and SWEEPER in {f.src for f in probes}
    (pair,) = [f for f in found if f.detector == "pair_score" and f.dst == SWEEPER]
    assert set(pair.evidence["detectors"]) == {"role_violation", "scan"}
    # Nothing answered: every scanner's finding, alone or combined per pair, stays below
    # the alert line; the one summary says medium (the firewall lets them reach the host).
    per_scanner = [f for f in found if f.detector not in ("host_score",) and f is not summary]
    assert max(f.score for f in per_scanner) < 0.5
    assert summary.severity == "medium"


def test_udp_port_scan_of_an_internet_server_in_ritas_missing_host(
    shared_data: Path, tmp_path: Path
) -> None:
    """RITA's ``missing_host``: 104.152.52.90 probes 253 TCP and 113 UDP ports of the
    server within one 5-minute epoch (the UDP probes get nothing back). A handful of
    other sources send single UDP datagrams from ports 5060 and 5353 that Zeek logs
    with the server as originator (history ``^d``): they must not make it a scanner."""
    server = "64.225.56.201"
    (tmp_path / "vigile.toml").write_text(f'[network]\ninternal = ["{server}/32"]\n')
    config = load_config(tmp_path / "vigile.toml")
    (detector,) = [d for d in registered_detectors() if d.name == "scan"]
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [shared_data / "zeek/rita/missing_host"])
        lo, hi = store.time_bounds("conn")
        found = detector().run(HuntContext(store, config, Window(lo, hi)))
    finally:
        store.close()
    by_src = {f.src: f for f in found}
    assert server not in by_src and {f.dst for f in found} == {server}
    udp = [f for f in found if "udp" in f.evidence["protocols"]]
    assert [f.src for f in udp] == ["104.152.52.90"]
    assert udp[0].evidence["by_protocol"]["udp"]["max_ports_on_one_host"] == 113
    assert udp[0].evidence["by_protocol"]["tcp"]["max_ports_on_one_host"] == 253
