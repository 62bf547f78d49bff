"""Simulated captures, checked by tshark (the real peer): same traffic as the other outputs."""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import require_tool
from typer.testing import CliRunner

from vigile.cli import app

SCENARIOS = (
    "bmc_beacon:start_day=0,sleep=",
    "http_beacon:start_day=0",
    "https_beacon:start_day=0",
    "dns_beacon:start_day=0",
    "dns_tunnel:start_day=0.05,minutes=2",
    "port_scan:start_day=0.05,targets=8",
    "long_connection:start_day=0,hours=2",
)
#: tshark's names of the protocols the simulator writes; each must appear in the capture.
BUILT = {"dns", "http", "tls", "ntp", "kerberos", "ldap", "smb2", "snmp", "ipmi_session", "smtp"}


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run as a capture and, from the same seed, as Parquet tables, in one folder each
    (a folder is ingested as a whole); returns the capture's folder."""
    out = tmp_path_factory.mktemp("pcap")
    for fmt in ("pcap", "parquet"):
        args = ["simulate", "--out", str(out / fmt), "--days", "0.125", "--hosts", "4"]
        args += ["--seed", "11", "--activity", "8"]  # people at work at night: every service
        args += ["-f", fmt]
        for s in SCENARIOS:
            args += ["-s", s]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    return out


def _tshark(pcap: Path, *args: str) -> str:
    tshark = require_tool("tshark")
    done = subprocess.run(
        [tshark, "-n", "-r", str(pcap), *args], capture_output=True, text=True, check=True
    )
    complaints = [
        line for line in done.stderr.splitlines() if line.strip() and "Running as user" not in line
    ]
    assert complaints == [], complaints
    return done.stdout


def test_tshark_counts_the_packets_and_bytes_of_the_conn_rows(capture: Path) -> None:
    conn = pq.read_table(capture / "parquet" / "conn.parquet")
    frames = pc.sum(pc.add(conn["orig_pkts"], conn["resp_pkts"])).as_py()
    ip_bytes = pc.sum(pc.add(conn["orig_ip_bytes"], conn["resp_ip_bytes"])).as_py()
    lengths = _tshark(capture / "pcap" / "traffic.pcap", "-T", "fields", "-e", "frame.len").split()
    assert len(lengths) == frames
    assert sum(map(int, lengths)) == ip_bytes + 14 * frames  # Ethernet headers on top


def _multiset(values: list[str | None]) -> collections.Counter[str]:
    return collections.Counter(v for v in values if v)


def test_tshark_reads_the_same_names(capture: Path) -> None:
    pcap = capture / "pcap" / "traffic.pcap"
    queries = _tshark(pcap, "-Y", "dns.flags.response == 0", "-T", "fields", "-e", "dns.qry.name")
    dns = pq.read_table(capture / "parquet" / "dns.parquet")
    assert _multiset(queries.split()) == _multiset(dns["query"].to_pylist())
    snis = _tshark(
        pcap,
        "-Y",
        "tls.handshake.type == 1",
        "-T",
        "fields",
        "-e",
        "tls.handshake.extensions_server_name",
    )
    tls = pq.read_table(capture / "parquet" / "tls.parquet")
    assert _multiset(snis.split()) == _multiset(tls["sni"].to_pylist())
    assert sum(_multiset(snis.split()).values()) > 50
    hosts = _tshark(pcap, "-Y", "http.request", "-T", "fields", "-e", "http.host")
    http = pq.read_table(capture / "parquet" / "http.parquet")
    assert _multiset(hosts.split()) == _multiset(http["host"].to_pylist())
    lengths = _tshark(pcap, "-Y", "http.response", "-T", "fields", "-e", "http.content_length")
    logged = [str(n) for n in http["response_body_len"].to_pylist()]
    assert _multiset(lengths.split()) == _multiset(logged)


def _expert(pcap: Path) -> dict[str, list[tuple[int, str, str, str]]]:
    """tshark's expert information of warning severity and above, by severity section."""
    out: dict[str, list[tuple[int, str, str, str]]] = {}
    section = ""
    for line in _tshark(pcap, "-q", "-z", "expert,warn").splitlines():
        words = line.split(maxsplit=3)
        if line and not line.startswith((" ", "=")):
            section = words[0]
            out[section] = []
        elif len(words) == 4 and words[0].isdigit():
            out[section].append((int(words[0]), words[1], words[2], words[3].strip()))
    return out


def test_tshark_finds_no_fault_in_any_packet(capture: Path) -> None:
    """No malformed packet, no error or warning, except a reset where the row is REJ."""
    pcap = capture / "pcap" / "traffic.pcap"
    protocols = set(
        _tshark(pcap, "-T", "fields", "-e", "frame.protocols").replace("\n", ":").split(":")
    )
    assert protocols >= BUILT, BUILT - protocols
    conn = pq.read_table(capture / "parquet" / "conn.parquet")
    rejected = pc.sum(pc.equal(conn["conn_state"], "REJ")).as_py()
    assert rejected > 0
    expert = _expert(pcap)
    assert expert.pop("Warns", []) == [(rejected, "Sequence", "TCP", "Connection reset (RST)")]
    assert expert == {}, expert


def test_same_seed_same_capture(tmp_path: Path) -> None:
    """Payload builders draw nothing at random of their own: a capture repeats byte for byte."""
    made = []
    for name in ("a", "b"):
        args = ["simulate", "--out", str(tmp_path / name), "-f", "pcap", "--seed", "3"]
        args += [
            "--days",
            "0.02",
            "--hosts",
            "2",
            "--activity",
            "20",
            "-s",
            "dns_tunnel:start_day=0",
        ]
        assert CliRunner().invoke(app, args).exit_code == 0
        made.append((tmp_path / name / "traffic.pcap").read_bytes())
    assert made[0] == made[1]
    assert len(made[0]) > 100_000
