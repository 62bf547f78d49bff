"""RITA v5 parity and the C2 detectors on real data (``../shared/data``).

Expected values are RITA v5's published results for these datasets (see the data
README); each must be met within +-0.05 (scores), 1 s (durations) or exactly (counts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import Config, load_config
from vigile.detect import HuntContext, default_window
from vigile.detect.beacon import BeaconDetector
from vigile.detect.dns_c2 import DnsC2Detector
from vigile.detect.long_connection import LongConnectionDetector
from vigile.errors import UserError
from vigile.ingest import ingest_paths
from vigile.store.duckdb import DuckDBStore

runner = CliRunner()


def _store(tmp: Path, data: Path) -> Path:
    db = tmp / "store.duckdb"
    store = DuckDBStore(db)
    try:
        ingest_paths(store, [data])
    finally:
        store.close()
    return db


@pytest.fixture(scope="module")
def missing_host(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("missing_host")
    config = tmp / "vigile.toml"
    config.write_text(
        '[network]\ninternal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", '
        '"64.225.56.201/32"]\n[detectors.beacon]\nrita_parity = true\n'
    )
    return _store(tmp, shared_data / "zeek/rita/missing_host"), config


def _run(db: Path, detector: Any, config: Path | None = None) -> list[Any]:
    store = DuckDBStore(db, read_only=True)
    try:
        cfg = load_config(config) if config else Config()
        ctx = HuntContext(store, cfg, default_window(store, 24))
        return detector().run(ctx)
    finally:
        store.close()


def _one(findings: list[Any], **subject: str | None) -> Any:
    hits = [f for f in findings if all(getattr(f, k) == v for k, v in subject.items())]
    assert len(hits) == 1, [(f.src, f.dst, f.fqdn) for f in findings]
    return hits[0]


def test_missing_host_beacon_matches_rita(missing_host: tuple[Path, Path]) -> None:
    db, config = missing_host
    f = _one(_run(db, BeaconDetector, config), src="73.54.23.243", dst="64.225.56.201", fqdn=None)
    assert f.evidence["rita_score"] == pytest.approx(0.963, abs=0.05)
    assert f.evidence["connections"] == 331
    assert f.evidence["window_start_s"] == 1713657591
    assert f.evidence["window_end_s"] == 1713743991


def test_missing_host_long_connection_matches_rita(missing_host: tuple[Path, Path]) -> None:
    db, config = missing_host
    f = _one(_run(db, LongConnectionDetector, config), src="73.54.23.243", dst="64.225.56.201")
    assert f.evidence["total_duration_s"] == pytest.approx(270_036.63, abs=1.0)
    assert f.score == pytest.approx(0.8)


def test_missing_host_beacon_is_the_top_hunt_finding(missing_host: tuple[Path, Path]) -> None:
    db, config = missing_host
    out = runner.invoke(app, ["hunt", "--db", str(db), "--config", str(config), "--json"])
    assert out.exit_code == 0, out.output
    top = json.loads(out.stdout.splitlines()[0])
    assert (top["detector"], top["src"], top["dst"]) == ("beacon", "73.54.23.243", "64.225.56.201")
    lo, hi = top["evidence"]["period_range_s"]
    assert 190 <= lo < hi <= 360
    assert f"every {lo}–{hi} s" in top["explanation"]
    assert "no Host header" in top["explanation"]
    shown = runner.invoke(app, ["explain", top["id"], "--db", str(db), "--json"])
    assert json.loads(shown.stdout) == top
    table = runner.invoke(app, ["explain", top["id"], "--db", str(db)])
    assert table.exit_code == 0 and "rita_ts_score" in table.stdout
    missing = runner.invoke(app, ["explain", "0000000000000000", "--db", str(db)])
    assert isinstance(missing.exception, UserError)  # main() prints it as one line, exit 2
    assert "no finding with id '0000000000000000'" in str(missing.exception)


@pytest.mark.parametrize(
    ("fqdn", "score", "ts", "ds", "dur", "hist"),
    [
        ("www.honestimnotevil.com", 0.979, 0.921, 0.995, 1.0, 1.0),
        ("www.google.com", 0.586, 0.48, 0.865, 1.0, 0.0),
    ],
)
def test_proxy_sni_beacons_match_rita(
    shared_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
    fqdn: str,
    score: float,
    ts: float,
    ds: float,
    dur: float,
    hist: float,
) -> None:
    db = tmp_path_factory.getbasetemp() / "proxy" / "store.duckdb"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        _store(db.parent, shared_data / "zeek/rita/proxy")
    config = db.parent / "vigile.toml"
    config.write_text("[detectors.beacon]\nrita_parity = true\n")
    f = _one(_run(db, BeaconDetector, config), src="10.136.0.18", fqdn=fqdn)
    ev = f.evidence
    assert ev["proxy"] is True and f.dst == "10.136.0.16"
    for key, want in [("", score), ("ts_", ts), ("ds_", ds), ("dur_", dur), ("hist_", hist)]:
        assert ev[f"rita_{key}score"] == pytest.approx(want, abs=0.05), key


def test_dns_c2_flags_the_simda_dga_host(shared_data: Path, tmp_path: Path) -> None:
    (folder,) = sorted(shared_data.glob("zeek/stratosphere/005-*"))
    db = _store(tmp_path, folder)
    findings = _run(db, DnsC2Detector)
    dga = _one(findings, src="fd77:48a1:c0bb:0:b96c:506d:6c7f:e8be")
    assert dga.score >= 0.9 and dga.evidence["failing_domains"] >= 100
    assert "domain generation algorithm" in dga.explanation


def test_multi_day_window_is_visible_in_the_evidence(missing_host: tuple[Path, Path]) -> None:
    db, config = missing_host
    args = ["hunt", "--db", str(db), "--config", str(config), "--window-hours", "72", "--json"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    top = next(r for r in rows if r["detector"] == "beacon" and r["src"] == "73.54.23.243")
    ev = top["evidence"]
    assert ev["window"] == "last 72 h ending at the newest connection"
    assert ev["window_end_s"] - ev["window_start_s"] == 72 * 3600
    assert ev["connections"] == 951  # every connection of the pair in the three days


def _tshark_dns_log(pcap: Path, out: Path) -> None:
    """DNS queries of a capture as a Zeek dns.log, dissected by tshark (a real peer).

    The iodine capture read by an independent dissector; bytes outside printable ASCII
    are escaped as ``\\xHH``, as Zeek does.
    """
    import subprocess

    from tests.conftest import require_tool

    tshark = require_tool("tshark")
    fields = ["frame.time_epoch", "ip.src", "udp.srcport", "ip.dst", "udp.dstport"]
    fields += ["dns.id", "dns.qry.name", "dns.qry.type"]
    cmd = [tshark, "-r", str(pcap), "-Y", "dns.flags.response == 0", "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    text = "".join(chr(b) if 32 <= b < 127 or b in (9, 10) else f"\\x{b:02x}" for b in raw)
    header = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id query qtype".split()
    lines = ["#separator \\x09", "#path\tdns", "#fields\t" + "\t".join(header)]
    for i, line in enumerate(text.splitlines()):
        ts, src, sport, dst, dport, tid, name, qtype = line.split("\t")
        tid = str(int(tid, 16)) if tid.startswith("0x") else tid
        lines.append("\t".join([ts, f"T{i}", src, sport, dst, dport, "udp", tid, name, qtype]))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_dns_c2_flags_the_iodine_tunnel(shared_data: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    _tshark_dns_log(shared_data / "pcap/ndpi/dns-tunnel-iodine.pcap", logs / "dns.log")
    findings = _run(_store(tmp_path, logs), DnsC2Detector)
    tunnel = _one(findings, fqdn="pirate.sea")
    assert tunnel.src == "10.0.2.30"
    assert tunnel.score >= 0.9 and tunnel.evidence["unique_subdomains"] >= 200
    assert tunnel.evidence["payload_record_share"] == 1.0  # iodine's NULL records


def test_dns_c2_flags_the_iodine_tunnel_from_the_capture_itself(
    shared_data: Path, tmp_path: Path
) -> None:
    """The same tunnel through vigile's own pcap reader, no Zeek and no tshark involved."""
    db = _store(tmp_path, shared_data / "pcap/ndpi/dns-tunnel-iodine.pcap")
    tunnel = _one(_run(db, DnsC2Detector), fqdn="pirate.sea")
    assert tunnel.src == "10.0.2.30"
    assert tunnel.score >= 0.9 and tunnel.evidence["unique_subdomains"] >= 200
    assert tunnel.evidence["payload_record_share"] == 1.0
