"""NetFlow v5: a fixed 24-byte header and up to 30 fixed 48-byte IPv4 records.

Layout from Cisco's "NetFlow Export Datagram Format" (v5 header and flow record).
"""

from __future__ import annotations

import struct

from vigile.ingest.netflow.templates import DecodeError, DecodeResult, Flow

HEADER = struct.Struct("!HHIIIIBBH")
#: srcaddr dstaddr (nexthop input output) dPkts dOctets First Last srcport dstport
#: (pad1 tcp_flags) prot (tos src_as dst_as src_mask dst_mask pad2)
RECORD = struct.Struct("!II8xIIIIHHxBB9x")
MAX_COUNT = 30


def decode(data: bytes, exporter: str) -> DecodeResult:
    """Decode a v5 datagram (see the contract in :mod:`vigile.ingest.netflow`).

    >>> hdr = HEADER.pack(5, 1, 10_000, 1_700_000_000, 0, 41, 0, 0, 0)
    >>> rec = RECORD.pack(0x0A000001, 0x0A000002, 3, 180, 9_000,
    ...     9_500, 40000, 53, 0, 17)
    >>> r = decode(hdr + rec, "192.0.2.1")
    >>> r.sequence, r.flows[0][2:9]
    (41, (167772161, 40000, 167772162, 53, 17, 3, 180))
    """
    if len(data) < HEADER.size:
        raise DecodeError(f"v5 datagram of {len(data)} bytes is shorter than its header")
    _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, _ = HEADER.unpack_from(data)
    if count > MAX_COUNT:
        raise DecodeError(f"v5 header claims {count} records (at most {MAX_COUNT})")
    if len(data) != HEADER.size + count * RECORD.size:
        raise DecodeError(
            f"v5 header claims {count} records but the datagram has {len(data)} bytes "
            f"(expected {HEADER.size + count * RECORD.size})"
        )
    export_us = secs * 1_000_000 + nsecs // 1000
    flows: list[Flow] = []
    for src, dst, pkts, octets, first, last, sport, dport, flags, proto in RECORD.iter_unpack(
        data[HEADER.size :]
    ):
        start = export_us - ((uptime - first) & 0xFFFFFFFF) * 1000
        end = export_us - ((uptime - last) & 0xFFFFFFFF) * 1000
        if proto == 1:  # the ICMP type and code travel in the destination port
            sport, dport = dport >> 8, dport & 0xFF
        flows.append(
            (start, end, src, sport, dst, dport, proto, pkts, octets, None, None, flags, None)
        )
    domain = engine_type << 8 | engine_id
    return DecodeResult(5, domain, sequence, flows, data_records=count)
