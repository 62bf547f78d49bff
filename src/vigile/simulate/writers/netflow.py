"""NetFlow v5 and IPFIX export of simulated traffic to a collector over UDP.

Each connection becomes one flow record per direction that carried packets, as a
router exporting unidirectional flows would send it. With ``inside`` (a callable giving
the mask of the internal addresses, as the vocabulary stands) only what internal hosts
send is exported, as by an exporter that meters its inside interface's ingress only:
replies from outside never arrive, and a connection from outside shows only its
internal responder's side. Records are packed with NumPy structured arrays (big-endian,
field by field as in the specifications) rather than one ``struct.pack`` per record, so
exports of millions of flows stay quick.

References: Cisco NetFlow v5 export format; RFC 7011 (IPFIX), RFC 7012 information
elements 1, 2, 4, 6, 7, 8, 11, 12, 152, 153.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from vigile.simulate.flows import REJ, S0, TCP, Flows, Vocabs
from vigile.simulate.writers.zeek import HEADER

V5_RECORD = np.dtype([
    ("src", ">u4"), ("dst", ">u4"), ("nexthop", ">u4"), ("input", ">u2"), ("output", ">u2"),
    ("pkts", ">u4"), ("octets", ">u4"), ("first", ">u4"), ("last", ">u4"), ("sport", ">u2"),
    ("dport", ">u2"), ("pad1", "u1"), ("flags", "u1"), ("proto", "u1"), ("tos", "u1"),
    ("src_as", ">u2"), ("dst_as", ">u2"), ("src_mask", "u1"), ("dst_mask", "u1"), ("pad2", ">u2"),
])  # fmt: skip
IPFIX_RECORD = np.dtype([
    ("src", ">u4"), ("dst", ">u4"), ("sport", ">u2"), ("dport", ">u2"), ("proto", "u1"),
    ("flags", "u1"), ("pkts", ">u8"), ("octets", ">u8"), ("start", ">u8"), ("end", ">u8"),
])  # fmt: skip
#: (information element id, length) in IPFIX_RECORD's order.
IPFIX_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8),
                (153, 8))  # fmt: skip
TEMPLATE_ID = 256
V5_MAX, IPFIX_MAX = 30, 28
PROTO_NUMBERS = np.array([6, 17, 1], np.uint8)


def _tcp_flags(f: Flows, outbound: bool) -> np.ndarray:
    syn, fin, rst, psh, ack = 0x02, 0x01, 0x04, 0x08, 0x10
    full = syn | fin | psh | ack
    flags = np.where(
        f.state == S0, syn, np.where(f.state == REJ, syn if outbound else rst | ack, full)
    )
    return np.where(f.proto == TCP, flags, 0).astype(np.uint8)


class NetflowExporter:
    """Sends each hour's connections to ``(host, port)`` as NetFlow v5 or IPFIX."""

    def __init__(
        self,
        vocabs: Vocabs,
        host: str,
        port: int,
        version: int = 10,
        pace: Callable[[int], None] | None = None,
        inside: Callable[[], np.ndarray] | None = None,
    ) -> None:
        if version not in (5, 10):
            raise ValueError("NetFlow version must be 5 or 10 (IPFIX)")
        self.vocabs, self.target, self.version = vocabs, (host, port), version
        #: Gives, per address of ``vocabs.addr``, whether it is internal; set: one-way.
        self.inside = inside
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.boot: float | None = None
        self.sequence = 0
        self.datagrams = 0
        self.records = 0
        # Collectors read from a socket buffer; a short pause every 64 datagrams keeps a
        # burst from overflowing it.
        self._pace = pace or (lambda n: time.sleep(0.002) if n % 64 == 0 else None)

    def _ipv4(self) -> np.ndarray:
        return np.array([int(ipaddress.IPv4Address(a)) for a in self.vocabs.addr.values], ">u4")

    def records_of(self, f: Flows) -> dict[str, np.ndarray]:
        """Unidirectional records in export order.

        Each connection gives its originator's record and, where the responder sent
        packets, the responder's right after it; connections go in the order they end.
        That is softflowd's order (it expires a connection's two directions together,
        oldest first) and, near enough, a router's (each direction at its own timeout
        after its last packet, seconds apart at most). Sending all of an hour's
        originator records before its responder records would put thousands of records
        between the two sides of every connection, a spacing no exporter produces.
        """
        ip = self._ipv4()
        hdr = np.array([HEADER[p] for p in range(3)])[f.proto]
        back = f.rpkts > 0
        cat = np.concatenate
        end = f.ts + f.duration
        index = np.arange(len(back))
        side = cat([np.zeros(len(back), np.int8), np.ones(int(back.sum()), np.int8)])
        order = np.lexsort((side, cat([index, index[back]]), cat([end, end[back]])))
        records = {
            "src": cat([ip[f.src], ip[f.dst][back]]), "dst": cat([ip[f.dst], ip[f.src][back]]),
            "sport": cat([f.sport, f.dport[back]]), "dport": cat([f.dport, f.sport[back]]),
            "proto": cat([PROTO_NUMBERS[f.proto], PROTO_NUMBERS[f.proto][back]]),
            "flags": cat([_tcp_flags(f, True), _tcp_flags(f, False)[back]]),
            "pkts": cat([f.opkts, f.rpkts[back]]),
            "octets": cat([f.obytes + f.opkts * hdr, (f.rbytes + f.rpkts * hdr)[back]]),
            "start": cat([f.ts, f.ts[back]]), "end": cat([end, end[back]]),
        }  # fmt: skip
        if self.inside is not None:  # sent by an internal host
            order = order[self.inside()[cat([f.src, f.dst[back]])][order]]
        return {name: values[order] for name, values in records.items()}

    def write(
        self, flows: Flows, uid: pa.Array, t0: float, t1: float, rng: np.random.Generator
    ) -> None:
        if self.boot is None:
            self.boot = t0 - 1.0
        rec = self.records_of(flows)
        n = len(rec["src"])
        self.records += n
        if self.version == 5:
            self._send_v5(rec, n, t1)
        else:
            self._send_ipfix(rec, n, t1)

    def _send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)
        self.datagrams += 1
        self._pace(self.datagrams)

    def _send_v5(self, rec: dict[str, np.ndarray], n: int, now: float) -> None:
        assert self.boot is not None
        arr = np.zeros(n, V5_RECORD)
        for k in ("src", "dst", "sport", "dport", "proto", "flags"):
            arr[k] = rec[k]
        arr["pkts"] = np.minimum(rec["pkts"], 2**32 - 1)
        arr["octets"] = np.minimum(rec["octets"], 2**32 - 1)  # v5 counters are 32-bit
        arr["first"] = np.round((rec["start"] - self.boot) * 1000).astype(np.uint64)
        arr["last"] = np.round((rec["end"] - self.boot) * 1000).astype(np.uint64)
        for i in range(0, n, V5_MAX):
            part = arr[i : i + V5_MAX]
            # A flow is exported once it has ended: the datagram's clock is at or after the
            # last packet of every record in it (collectors read a later "last" as wrapped).
            sent = max(now, float(rec["end"][i : i + V5_MAX].max()) + 0.001)
            uptime = round((sent - self.boot) * 1000) & 0xFFFFFFFF
            nsecs = int((sent % 1) * 1e9)
            head = struct.pack(
                "!HHIIIIBBH", 5, len(part), uptime, int(sent), nsecs, self.sequence, 0, 0, 0
            )
            self.sequence += len(part)
            self._send(head + part.tobytes())

    def _send_ipfix(self, rec: dict[str, np.ndarray], n: int, now: float) -> None:
        arr = np.zeros(n, IPFIX_RECORD)
        for k in ("src", "dst", "sport", "dport", "proto", "flags", "pkts", "octets"):
            arr[k] = rec[k]
        arr["start"] = np.round(rec["start"] * 1000).astype(np.uint64)
        arr["end"] = np.round(rec["end"] * 1000).astype(np.uint64)
        fields = b"".join(struct.pack("!HH", ie, size) for ie, size in IPFIX_FIELDS)
        template = struct.pack("!HHHH", 2, 8 + len(fields), TEMPLATE_ID, len(IPFIX_FIELDS))
        template += fields
        for i in range(0, n, IPFIX_MAX):
            part = arr[i : i + IPFIX_MAX].tobytes()
            # The template rides in every message: over UDP a collector may miss any one.
            data = struct.pack("!HH", TEMPLATE_ID, 4 + len(part)) + part
            body = template + data
            sent = max(now, float(rec["end"][i : i + IPFIX_MAX].max()))
            head = struct.pack("!HHIII", 10, 16 + len(body), int(sent), self.sequence, 1)
            self.sequence += len(part) // IPFIX_RECORD.itemsize
            self._send(head + body)

    def close(self) -> None:
        self.sock.close()
