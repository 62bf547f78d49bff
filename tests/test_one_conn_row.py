"""A connection exported as one record per direction is one ``conn`` row.

nfdump's ``nfpcapd`` turns shared captures into nfcapd files (one record per
direction); vigile reads them, and its pcap reader reads the same captures. For every
TCP/UDP connection both see once (the pcap reader finds one connection, nfpcapd wrote
at most one record per direction: a connection nfpcapd cut by its own timeouts, or IP
fragments it reassembled, is a different count of the same traffic, not a pairing
question), vigile stores exactly one row, whose two sides are nfpcapd's two records
and, for TCP, the pcap reader's counters.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.conftest import require_tool
from tests.netflow_peers import nfdump_flows
from tests.payload_agreement import nfpcapd_rows, stored_rows

CAPTURES = (
    "ndpi/http_ipv6.pcap",
    "ndpi/googledns_android10.pcap",
    "ndpi/smtp.pcap",
    "ndpi/rmcp.pcap",
    "ndpi/dns_fragmented.pcap",
    "caldera/ragdoll.pcap",
    "caldera/sandcat.pcap",
)
Endpoint = tuple[str, int]


def _conn_key(src: str, sport: int, dst: str, dport: int, proto: str) -> tuple[Any, ...]:
    return (proto.lower(), *sorted([(src, sport), (dst, dport)]))


def _sides(r: dict[str, Any]) -> dict[Endpoint, tuple[int, int]]:
    """Each endpoint's (packets, IP bytes) sent; an unseen responder sent nothing."""
    resp = (r["resp_pkts"] or 0, r["resp_ip_bytes"] or 0)
    return {
        (r["src"], r["src_port"]): (r["orig_pkts"], r["orig_ip_bytes"]),
        (r["dst"], r["dst_port"]): resp,
    }


def test_each_connection_is_one_row_with_both_records(shared_data: Path, tmp_path: Path) -> None:
    for tool in ("nfpcapd", "nfdump"):
        require_tool(tool)
    pcaps = [shared_data / "pcap" / c for c in CAPTURES]
    truth: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for t in stored_rows(tmp_path / "pcap.duckdb", pcaps):
        if t["proto"] in ("tcp", "udp"):
            truth[_conn_key(t["src"], t["src_port"], t["dst"], t["dst_port"], t["proto"])].append(t)
    rows: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in nfpcapd_rows(pcaps, tmp_path):
        rows[_conn_key(r["src"], r["src_port"], r["dst"], r["dst_port"], r["proto"])].append(r)
    # nfpcapd's own records, per connection and direction.
    records: dict[tuple[Any, ...], dict[Endpoint, list[tuple[int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for (src, sport, dst, dport, pkts, octets, _, _), n in nfdump_flows(
        tmp_path / "nfcapd"
    ).items():
        if sport is not None and dport is not None:  # TCP, UDP (the key has no protocol)
            ends = _conn_key(src, sport, dst, dport, "")[1:]
            records[ends][(src, sport)] += [(pkts, octets)] * n
    once = [
        k
        for k in truth
        if k[1:] in records
        and len(truth[k]) == 1
        and all(len(v) == 1 for v in records[k[1:]].values())
    ]
    pairs = [k for k in once if len(records[k[1:]]) == 2]
    # Measured on these captures: 62 connections seen once by both, 54 with both records.
    assert len(once) >= 60 and len(pairs) >= 50
    assert Counter(len(rows[k]) for k in once) == Counter({1: len(once)})  # one row each
    for k in once:
        (row,) = rows[k]
        exported = {side: recs[0] for side, recs in records[k[1:]].items()}
        assert {e: s for e, s in _sides(row).items() if s != (0, 0)} == exported, k
        if k[0] == "tcp":  # UDP: nfpcapd counts a reassembled datagram as one packet
            assert _sides(row) == _sides(truth[k][0]), k
    # Before pairs became one row, each of these connections was two rows.
    assert sum(len(rows[k]) for k in pairs) == len(pairs)
