"""Packet captures (libpcap, Ethernet) of simulated traffic, for small runs.

Every connection becomes the packets a real exchange would have, with exactly the
payload sizes and packet counts of its conn row, so a capture and the Zeek logs of
the same run describe the same traffic: TCP with handshake, data in 1,448-byte
segments and FINs (or a lone SYN, or SYN and RST); UDP as datagrams. Payloads are
real protocol messages of every service the simulator makes (see
:mod:`.services`): DNS, HTTP/1.1, TLS 1.3, NTP, Kerberos, LDAP, SMB2, SNMP, IPMI,
SMTP, the monitoring agent and printing; any other connection carries TLS records.

Written by hand with ``struct`` because no packet library here builds exact-size
protocol messages at this rate; tshark (a real peer) checks the result in the tests.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa

from vigile.simulate.flows import REJ, S0, TCP, Flows, Vocabs, request_times
from vigile.simulate.writers import services

MSS = 1448
GATEWAY_MAC = bytes.fromhex("02005e000001")
#: A capture larger than this is refused: pcap output is meant for small runs.
MAX_BYTES = 2_000_000_000
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(np.frombuffer(data, dtype=">u2").tolist())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class _Endpoint:
    def __init__(self, ip: str, port: int, internal: bool) -> None:
        self.ip = bytes(int(x) for x in ip.split("."))
        self.port = port
        self.mac = b"\x02\x00" + self.ip if internal else GATEWAY_MAC


def _frame(a: _Endpoint, b: _Endpoint, proto: int, transport: bytes, ident: int) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(transport),
        ident & 0xFFFF,
        0x4000,
        64,
        proto,
        0,
        a.ip,
        b.ip,
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b.mac + a.mac + b"\x08\x00" + ip + transport


def _tcp(a: _Endpoint, b: _Endpoint, seq: int, ack: int, flags: int, data: bytes) -> bytes:
    head = struct.pack(
        "!HHIIBBHHH", a.port, b.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 64240, 0, 0
    )
    pseudo = a.ip + b.ip + struct.pack("!BBH", 0, 6, len(head) + len(data))
    csum = _checksum(pseudo + head + data)
    return head[:16] + struct.pack("!H", csum) + head[18:] + data


def _udp(a: _Endpoint, b: _Endpoint, data: bytes) -> bytes:
    head = struct.pack("!HHHH", a.port, b.port, 8 + len(data), 0)
    pseudo = a.ip + b.ip + struct.pack("!BBH", 0, 17, 8 + len(data))
    csum = _checksum(pseudo + head + data) or 0xFFFF
    return head[:6] + struct.pack("!H", csum) + data


def _segments(data: bytes) -> list[bytes]:
    return [data[i : i + MSS] for i in range(0, len(data), MSS)]


class PcapWriter:
    """Appends each hour's connections as packets to one capture file."""

    def __init__(self, path: Path, vocabs: Vocabs, local: Callable[[], np.ndarray]) -> None:
        self.path, self.vocabs = path, vocabs
        self._local = local
        self._out: IO[bytes] = path.open("wb")
        # Classic libpcap header: microsecond timestamps, Ethernet (LINKTYPE 1).
        self._out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self._pending: list[tuple[float, int, bytes]] = []
        self._count = 0
        self.written = 0

    def write(
        self, flows: Flows, uid: pa.Array, t0: float, t1: float, rng: np.random.Generator
    ) -> None:
        local = self._local()
        addr = self.vocabs.addr.values
        for i in range(len(flows)):
            a = _Endpoint(addr[flows.src[i]], int(flows.sport[i]), bool(local[flows.src[i]]))
            b = _Endpoint(addr[flows.dst[i]], int(flows.dport[i]), bool(local[flows.dst[i]]))
            for ts, pkt in self._flow(flows, i, a, b, rng):
                self._count += 1
                heapq.heappush(self._pending, (ts, self._count, pkt))
        self._flush(t1)

    def _flush(self, until: float) -> None:
        while self._pending and self._pending[0][0] < until:
            ts, _, pkt = heapq.heappop(self._pending)
            micros = round(ts * 1e6)
            self._out.write(
                struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(pkt), len(pkt))
                + pkt
            )
            self.written += 16 + len(pkt)
            if self.written > MAX_BYTES:
                from vigile.errors import ConfigError

                raise ConfigError(
                    f"{self.path}: capture over {MAX_BYTES:,} bytes; pcap output "
                    "is for small runs (use fewer --hosts or --days)"
                )

    def _flow(
        self, f: Flows, i: int, a: _Endpoint, b: _Endpoint, rng: np.random.Generator
    ) -> list[tuple[float, bytes]]:
        ob, rb = int(f.obytes[i]), int(f.rbytes[i])
        req, resp = services.build(self.vocabs, f, i, ob, rb)
        ts, dur = float(f.ts[i]), float(f.duration[i])
        if f.proto[i] != TCP:
            out = [(ts, _frame(a, b, 17, _udp(a, b, seg), 1)) for seg in _segments(req) or [b""]]
            if f.state[i] != S0:
                out += [(ts + dur, _frame(b, a, 17, _udp(b, a, seg), 1)) for seg in _segments(resp)]
            return out
        return self._tcp_flow(f, i, a, b, req, resp, ts, dur, rng)

    def _tcp_flow(
        self,
        f: Flows,
        i: int,
        a: _Endpoint,
        b: _Endpoint,
        req: bytes,
        resp: bytes,
        ts: float,
        dur: float,
        rng: np.random.Generator,
    ) -> list[tuple[float, bytes]]:
        isn_a, isn_b = (int(x) for x in rng.integers(0, 2**32, 2))
        out = [(ts, _frame(a, b, 6, _tcp(a, b, isn_a, 0, SYN, b""), 1))]
        if f.state[i] == S0:
            return out
        if f.state[i] == REJ:
            rst = _tcp(b, a, 0, isn_a + 1, RST | ACK, b"")
            return [*out, (ts + dur, _frame(b, a, 6, rst, 1))]
        rtt = min(dur / 4, 0.02) if dur > 0 else 0.0
        sa, sb = isn_a + 1, isn_b + 1
        out.append((ts + rtt / 2, _frame(b, a, 6, _tcp(b, a, isn_b, sa, SYN | ACK, b""), 1)))
        out.append((ts + rtt, _frame(a, b, 6, _tcp(a, b, sa, sb, ACK, b""), 2)))
        a_segs, b_segs = _segments(req), _segments(resp)
        # Pure ACKs (keep-alives) make up any packets the conn row has beyond the minimum.
        extra_a = max(0, int(f.opkts[i]) - 3 - len(a_segs))
        extra_b = max(0, int(f.rpkts[i]) - 2 - len(b_segs))
        # The first request segment leaves at the request time the logs give (Zeek stamps
        # http and ssl rows with it); the rest spread over the connection until the FINs.
        first = float(request_times(np.array([ts]), np.array([dur]))[0])
        n = len(a_segs) + len(b_segs) + extra_a + extra_b
        step = (ts + dur - rtt - first) / n if n else 0.0
        t = first - step
        for seg in a_segs:
            t += step
            out.append((t, _frame(a, b, 6, _tcp(a, b, sa, sb, PSH | ACK, seg), 3)))
            sa += len(seg)
        for seg in b_segs:
            t += step
            out.append((t, _frame(b, a, 6, _tcp(b, a, sb, sa, PSH | ACK, seg), 3)))
            sb += len(seg)
        for k in range(extra_a + extra_b):
            t += step
            x, y, s1, s2 = (a, b, sa, sb) if k < extra_a else (b, a, sb, sa)
            out.append((t, _frame(x, y, 6, _tcp(x, y, s1 - 1, s2, ACK, b""), 4)))
        out.append((ts + dur - rtt / 2, _frame(a, b, 6, _tcp(a, b, sa, sb, FIN | ACK, b""), 5)))
        out.append((ts + dur, _frame(b, a, 6, _tcp(b, a, sb, sa + 1, FIN | ACK, b""), 5)))
        return out

    def close(self) -> None:
        self._flush(float("inf"))
        self._out.close()
