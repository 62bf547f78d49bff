"""The collector against real exporters: softflowd (v5, v9, IPFIX, IPFIX biflows) and
nfdump's nfpcapd + nfreplay, compared flow by flow with what nfdump's own collector
(nfcapd, read back with ``nfdump -o csv``) stores for the same export."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.conftest import require_tool
from tests.netflow_peers import RunningCollector, nfcapd_capture, nfdump_flows, run_softflowd

PCAPS = ["pcap/caldera/sandcat.pcap", "pcap/ndpi/http_ipv6.pcap", "pcap/ndpi/dns_fragmented.pcap"]
VERSIONS = {"v5": ("5", False), "v9": ("9", False), "ipfix": ("10", False), "biflow": ("10", True)}
#: v5 carries IPv4 only, so the IPv6 capture is exported with v9 and IPFIX.
CASES = [
    pytest.param(pcap, *spec, id=f"{name}-{Path(pcap).stem}")
    for pcap in PCAPS
    for name, spec in VERSIONS.items()
    if not (name == "v5" and "ipv6" in pcap)
]


@pytest.mark.parametrize(("pcap", "version", "bidir"), CASES)
def test_softflowd_export_matches_nfdump(
    shared_data: Path, tmp_path: Path, pcap: str, version: str, bidir: bool
) -> None:
    require_tool("softflowd")
    require_tool("nfcapd")
    source = shared_data / pcap
    expected = nfcapd_capture(
        tmp_path, lambda port: run_softflowd(source, port, version, bidir, tmp_path)
    )
    with RunningCollector(tmp_path / "v.duckdb", batch_seconds=0.5) as run:
        sent = run_softflowd(source, run.collector.port, version, bidir, tmp_path)
        run.wait_for(sent)
    c = run.counters
    assert (c.datagrams, c.malformed, c.unknown_template, c.lost, c.dropped) == (sent, 0, 0, 0, 0)
    got = run.flows(merged=not bidir)
    assert sum(expected.values()) > 0
    assert got == expected
    # One row per connection: a one-direction pair is one row, a biflow already is.
    assert c.flows == c.rows_written + c.merged == sum(got.values())
    assert (c.merged > 0) is not bidir
    store = run.open()
    sensors = {r["sensor"] for r in store.scan("conn", ["sensor"]).to_pylist()}
    store.close()
    assert sensors == {"127.0.0.1"}


def test_nfreplay_v9_matches_nfdump_file(shared_data: Path, tmp_path: Path) -> None:
    """nfpcapd turns a capture into an nfcapd file; nfreplay exports it as v9."""
    for tool in ("nfpcapd", "nfreplay", "nfdump"):
        require_tool(tool)
    flow_dir = tmp_path / "flows"
    flow_dir.mkdir()
    pcap = shared_data / "pcap/ndpi/googledns_android10.pcap"
    subprocess.run(
        ["nfpcapd", "-r", str(pcap), "-w", str(flow_dir)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    expected = nfdump_flows(flow_dir)
    files = sorted(p for p in flow_dir.rglob("nfcapd.*") if p.is_file())
    assert files and sum(expected.values()) > 0
    with RunningCollector(tmp_path / "v.duckdb", batch_seconds=0.5) as run:
        for f in files:
            subprocess.run(
                [
                    "nfreplay",
                    "-r",
                    str(f),
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(run.collector.port),
                    "-v",
                    "9",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        run.wait_for(1)
        deadline_flows = sum(expected.values())
        import time

        end = time.monotonic() + 10
        while run.collector.counters.flows < deadline_flows and time.monotonic() < end:
            time.sleep(0.05)
    assert run.counters.malformed == 0
    assert run.flows() == expected
