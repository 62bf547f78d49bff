"""``orig_payload``/``resp_payload`` from the real exporters agree with payload counts.

Five shared captures (IPv4 and IPv6, TCP sessions with small and large answers,
failed attempts, answered and unanswered UDP) go through vigile's pcap reader (the
truth: payload bytes > 0) and through softflowd (NetFlow v9 and IPFIX biflows) into
vigile's collector, nfpcapd into nfcapd files, and Suricata into EVE flow and
netflow events (:mod:`tests.payload_agreement`). On these captures every side the
flow records could tell agreed with the pcap reader (measured; the table over all
shared captures is in docs/detections.md), so the test asks for exact agreement;
what stays untold is only what cannot be told: the responder's side of a
one-direction record with no reverse record, where the responder sent nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import require_tool
from tests.payload_agreement import EXPORTERS, agreement, matches, stored_rows

from vigile.config import Config
from vigile.detect import HuntContext, default_window
from vigile.detect.roles import infer_roles
from vigile.ingest.payload import EVE_FRAMING, NETFLOW_FRAMING
from vigile.store.duckdb import DuckDBStore

CAPTURES = (
    "ndpi/http_ipv6.pcap",
    "ndpi/googledns_android10.pcap",
    "ndpi/smtp.pcap",
    "ndpi/rmcp.pcap",
    "caldera/ragdoll.pcap",
)
TOOLS = {
    "softflowd v9": "softflowd",
    "softflowd IPFIX -b": "softflowd",
    "nfpcapd": "nfpcapd",
    "Suricata flow": "suricata",
    "Suricata netflow": "suricata",
}
#: Exporters whose records carry both directions: every side is told.
BIFLOWS = ("softflowd IPFIX -b", "Suricata flow")


@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_inferred_payload_agrees_with_the_pcap_reader(
    exporter: str, shared_data: Path, tmp_path: Path
) -> None:
    require_tool(TOOLS[exporter])
    if exporter == "nfpcapd":
        require_tool("nfdump")
    pcaps = [shared_data / "pcap" / c for c in CAPTURES]
    truth = stored_rows(tmp_path / "pcap.duckdb", pcaps)
    rows = EXPORTERS[exporter](pcaps, tmp_path)
    found = agreement(matches(truth, rows, by_order=exporter.startswith("softflowd")))
    assert set(found) == {("tcp", "orig"), ("tcp", "resp"), ("udp", "orig"), ("udp", "resp")}
    # Measured: 60 sides sent payload, 14 to 28 sent none and were told so.
    assert sum(a.tp for a in found.values()) >= 60
    assert sum(a.tn for a in found.values()) >= 14
    for (proto, side), a in found.items():
        assert (a.fp, a.fn, a.unknown_payload) == (0, 0, 0), (proto, side, a)
        if exporter in BIFLOWS or side == "orig":
            assert a.unknown == 0, (proto, side, a)


FRAMINGS = [("softflowd v9", NETFLOW_FRAMING), ("nfpcapd", NETFLOW_FRAMING)]
FRAMINGS.append(("Suricata flow", EVE_FRAMING))
#: Ethernet pads a frame to 60 bytes: a bare 40-byte TCP segment carries 6 bytes of
#: padding, which softflowd and Suricata count (nfpcapd does not).
PADDING_MAX = 60 - 14 - 40


@pytest.mark.parametrize("exporter, framing", FRAMINGS)
def test_exporters_count_the_bytes_the_rule_assumes(
    exporter: str, framing: int, shared_data: Path, tmp_path: Path
) -> None:
    """softflowd and nfpcapd count IP bytes, as the pcap reader's ``*_ip_bytes``;
    Suricata counts Ethernet frames, 14 bytes a packet more (these captures are all
    Ethernet): the framing the payload rule allows for each. Beyond it, only the
    padding of short frames, within the TCP allowance."""
    require_tool(TOOLS[exporter])
    pcaps = [shared_data / "pcap" / c for c in CAPTURES]
    truth = stored_rows(tmp_path / "pcap.duckdb", pcaps)
    rows = EXPORTERS[exporter](pcaps, tmp_path)
    extra = []
    for t, r in matches(truth, rows, by_order=exporter.startswith("softflowd")):
        for side in ("orig", "resp"):
            pkts = t[f"{side}_pkts"]
            if r is not None and pkts and r[f"{side}_pkts"] == pkts:
                extra.append((r[f"{side}_ip_bytes"] - t[f"{side}_ip_bytes"]) / pkts)
    assert len(extra) >= 40  # measured: 41 sides (one-direction records: their own)
    assert all(framing <= e <= framing + PADDING_MAX for e in extra), sorted(set(extra))
    assert extra.count(framing) >= 0.9 * len(extra)


def test_the_slips_honeypot_is_a_server_from_eve_alone(shared_data: Path, tmp_path: Path) -> None:
    """Suricata's EVE of an internet-facing honeypot: with payload told from IP bytes,
    the host that answered 554/tcp for three clients is a server (before the payload
    columns no EVE connection was answered and it was a workstation)."""
    db = tmp_path / "slips.duckdb"
    stored_rows(db, [shared_data / "suricata" / "slips-test6-malicious.eve.json"])
    store = DuckDBStore(db)
    try:
        roles = infer_roles(HuntContext(store, Config(), default_window(store, 24)))
    finally:
        store.close()
    host = roles["192.168.1.129"]
    assert host.role == "server"
    assert host.served == {554: 3}
