"""A small capture with a TCP SYN scan and ordinary traffic, written with dpkt.

No shared capture holds a port scan with its answers, so the packets are built here,
as a scanner's kernel and its target's would send them:

* ``SCANNER`` SYN-scans ``TARGET`` on ports 1..40 from one source port (as
  ``nmap -sS`` does): closed ports answer RST/ACK (Zeek ``REJ``), ports in
  :data:`FILTERED` answer nothing (``S0``), ports in :data:`OPEN` answer SYN/ACK and
  the scanner resets (``RSTO``).
* with ``busy``, ``BUSY`` (a browser) opens HTTPS sessions to :data:`SERVERS`, 30
  hosts in 6 seconds, each a handshake, a small request, a 1,200-byte answer and a
  reset, by the client (Zeek ``RSTO``) or the server (``RSTR``): data was exchanged,
  so none is a failed attempt, though 30 hosts on one port are over the address
  scan's threshold (25) if they were counted.
* ``CLIENT`` makes :data:`WEB_CONNECTIONS` complete HTTP connections to ``TARGET``:80
  (handshake, request, response, FIN both ways: ``SF``), one answered DNS query to
  ``RESOLVER`` (UDP ``SF``) and one unanswered SNMP query (UDP ``S0``).
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

SCANNER, TARGET, CLIENT, RESOLVER, SILENT = (
    "203.0.113.66",
    "10.1.0.5",
    "10.1.0.9",
    "10.1.0.53",
    "10.1.0.77",
)
SCAN_PORT = 61234
OPEN = (22, 25)
FILTERED = (10, 11, 12, 13)
PORTS = range(1, 41)
WEB_CONNECTIONS = 3
START = 1_700_000_000.0
BUSY = "10.1.0.20"
SERVERS = tuple(f"198.51.100.{k}" for k in range(1, 31))
#: Zeek's states of the busy client's sessions (with ``busy``).
BUSY_STATES = {("tcp", BUSY, "RSTO"): 15, ("tcp", BUSY, "RSTR"): 15}
CLOSED = len(PORTS) - len(OPEN) - len(FILTERED)
#: What Zeek logs for the capture's connections: (proto, originator, state) → count.
ZEEK_STATES = {
    ("tcp", SCANNER, "REJ"): CLOSED,
    ("tcp", SCANNER, "S0"): len(FILTERED),
    ("tcp", SCANNER, "RSTO"): len(OPEN),
    ("tcp", CLIENT, "SF"): WEB_CONNECTIONS,
    ("udp", CLIENT, "SF"): 1,
    ("udp", CLIENT, "S0"): 1,
}
SYN, RST, PSH, ACK, FIN = dpkt.tcp.TH_SYN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_ACK, 1
ETH = dict(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02")


def _ip(src: str, dst: str, l4: dpkt.Packet, proto: int) -> bytes:
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64)
    ip.data = l4
    ip.len = 20 + len(bytes(l4))
    return bytes(dpkt.ethernet.Ethernet(data=ip, type=dpkt.ethernet.ETH_TYPE_IP, **ETH))


def tcp_frame(src: str, sport: int, dst: str, dport: int, flags: int, data: bytes = b"") -> bytes:
    """One Ethernet frame with a TCP segment (fixed sequence numbers: flags are what count)."""
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=2000, data=data)
    return _ip(src, dst, seg, dpkt.ip.IP_PROTO_TCP)


def _udp(src: str, sport: int, dst: str, dport: int, data: bytes) -> bytes:
    dgram = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    dgram.ulen = 8 + len(data)
    return _ip(src, dst, dgram, dpkt.ip.IP_PROTO_UDP)


def packets() -> list[tuple[float, bytes]]:
    """(time, frame) pairs in time order."""
    out: list[tuple[float, bytes]] = []
    t = START
    for port in PORTS:
        out.append((t, tcp_frame(SCANNER, SCAN_PORT, TARGET, port, SYN)))
        if port in OPEN:
            out.append((t + 0.001, tcp_frame(TARGET, port, SCANNER, SCAN_PORT, SYN | ACK)))
            out.append((t + 0.002, tcp_frame(SCANNER, SCAN_PORT, TARGET, port, RST)))
        elif port not in FILTERED:
            out.append((t + 0.001, tcp_frame(TARGET, port, SCANNER, SCAN_PORT, RST | ACK)))
        t += 0.05
    for i in range(WEB_CONNECTIONS):
        c, s, t = (CLIENT, 50000 + i), (TARGET, 80), t + 1
        exchange = [
            (c, s, SYN, b""),
            (s, c, SYN | ACK, b""),
            (c, s, ACK, b""),
            (c, s, PSH | ACK, b"GET / HTTP/1.1\r\nHost: target\r\n\r\n"),
            (s, c, PSH | ACK, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            (c, s, FIN | ACK, b""),
            (s, c, FIN | ACK, b""),
            (c, s, ACK, b""),
        ]
        for k, ((a, ap), (b, bp), flags, data) in enumerate(exchange):
            out.append((t + k * 0.01, tcp_frame(a, ap, b, bp, flags, data)))
    t += 1
    out.append((t, _udp(CLIENT, 40000, RESOLVER, 53, b"\x12\x34" + b"\x00" * 10)))
    out.append((t + 0.01, _udp(RESOLVER, 53, CLIENT, 40000, b"\x12\x34\x81\x80" + b"\x00" * 8)))
    out.append((t + 0.5, _udp(CLIENT, 40001, SILENT, 161, b"\x30\x00")))
    return sorted(out, key=lambda p: p[0])


def _segment(src: str, sport: int, dst: str, dport: int, flags: int, seq: int, ack: int,
             data: bytes = b"") -> bytes:  # fmt: skip
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, data=data)
    return _ip(src, dst, seg, dpkt.ip.IP_PROTO_TCP)


def busy_packets(t: float) -> list[tuple[float, bytes]]:
    """The busy client's sessions from ``t``, with consistent sequence numbers (a
    reset must fall in the receiver's window to end the session)."""
    out = []
    request, answer = b"\x17\x03\x03\x00\x30" + b"q" * 48, b"\x17\x03\x03\x04\xab" + b"a" * 1195
    for k, server in enumerate(SERVERS):
        c, s, at = (BUSY, 41000 + k), (server, 443), t + k * 0.2
        ci, si = 100_000 * (k + 1), 900_000 * (k + 1)
        c2, s2 = ci + 1 + len(request), si + 1 + len(answer)
        steps = [
            (c, s, SYN, ci, 0, b""),
            (s, c, SYN | ACK, si, ci + 1, b""),
            (c, s, ACK, ci + 1, si + 1, b""),
            (c, s, PSH | ACK, ci + 1, si + 1, request),
            (s, c, PSH | ACK, si + 1, c2, answer),
            (c, s, ACK, c2, s2, b""),
            (c, s, RST | ACK, c2, s2, b"") if k % 2 else (s, c, RST | ACK, s2, c2, b""),
        ]
        for n, ((a, ap), (b, bp), flags, seq, ack, data) in enumerate(steps):
            out.append((at + n * 0.005, _segment(a, ap, b, bp, flags, seq, ack, data)))
    return out


def write_capture(path: Path, *, busy: bool = False) -> Path:
    """Write :func:`packets` (and, with ``busy``, :func:`busy_packets` after the
    scan) as a pcap file; returns ``path``."""
    frames = packets() + (busy_packets(START + 2.5) if busy else [])
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for ts, frame in sorted(frames, key=lambda p: p[0]):
            writer.writepkt(frame, ts=ts)
    return path
