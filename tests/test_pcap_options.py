"""Reader options from vigile.toml: the pcap reader's flow inactivity timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from vigile.errors import ConfigError
from vigile.ingest import check_options, registered_readers


def _capture(path: Path, gaps: list[float]) -> None:
    """UDP 10.0.0.1:5000 -> 10.0.0.2:7000, one packet after each gap (seconds)."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        ts = 1_700_000_000.0
        for gap in gaps:
            ts += gap
            udp = dpkt.udp.UDP(sport=5000, dport=7000, data=b"x" * 20)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=17, data=udp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
            writer.writepkt(bytes(eth), ts=ts)


def _ingest(tmp: Path, capture: Path, config: str | None) -> subprocess.CompletedProcess[str]:
    args = ["ingest", str(capture), "--db", str(tmp / "v.duckdb"), "--json"]
    if config is not None:
        (tmp / "vigile.toml").write_text(config)
        args += ["--config", str(tmp / "vigile.toml")]
    return subprocess.run(
        [sys.executable, "-m", "vigile", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "config, flows",
    [
        (None, 2),  # Zeek's 60 s for UDP: the 90 s gap ends the first flow
        ("[ingest.pcap]\nudp_inactivity_timeout = 120\n", 1),
        ("[ingest.pcap]\nudp_inactivity_timeout = 5.5\n", 3),
        ("[ingest.pcap]\ntcp_inactivity_timeout = 5\n", 2),  # TCP's does not apply to UDP
    ],
)
def test_the_udp_timeout_decides_where_flows_end(
    tmp_path: Path, config: str | None, flows: int
) -> None:
    capture = tmp_path / "udp.pcap"
    _capture(capture, [0, 1, 90, 10])
    r = _ingest(tmp_path, capture, config)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["conn"] == flows


@pytest.mark.parametrize(
    "config, message",
    [
        ("[ingest.pcap]\nudp_inactivity_timeout = 0\n", "[ingest.pcap]: the UDP inactivity"),
        ('[ingest.pcap]\ntcp_inactivity_timeout = "5m"\n', "not '5m'"),
        ("[ingest.pcap]\nchunk_bytes = 5\n", "unknown option 'chunk_bytes' (options: tcp_"),
        ("[ingest.pcapp]\nx = 1\n", "no reader is named 'pcapp'"),
        ("[ingest]\npcap = 5\n", "[ingest] 'pcap' must be a table ([ingest.pcap])"),
        ("ingest = 5\n", "[ingest] must be a table"),
    ],
)
def test_a_bad_option_is_one_clear_line_before_anything_is_read(
    tmp_path: Path, config: str, message: str
) -> None:
    capture = tmp_path / "udp.pcap"
    _capture(capture, [0])
    r = _ingest(tmp_path, capture, config)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "v.duckdb").exists()


def test_readers_without_options_refuse_any() -> None:
    with pytest.raises(
        ConfigError, match=r"\[ingest.zeek-tsv\]: unknown option 'window' \(options: none\)"
    ):
        check_options(registered_readers(), {"zeek-tsv": {"window": 3}})
    check_options(registered_readers(), {"pcap": {"icmp_inactivity_timeout": 1}})
