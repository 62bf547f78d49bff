"""Build the golden captures (link types and tunnels the shared captures lack) and
their expected rows.

Run from the repository root: ``.venv/bin/python tests/golden/pcap/regenerate.py``.
It writes ``<name>.pcap``/``<name>.pcapng`` (packets built with dpkt, framed here)
and ``<name>.json`` (what vigile reads from it: conn, dns, http and tls rows without
the file-specific ids). Review the diff before committing; the golden test also
checks every capture against tshark, so a wrong capture cannot hide behind its own
expected output.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000.0
A4, B4, C4, D4 = (bytes([10, 0, 0, i]) for i in (1, 2, 3, 4))
A6 = bytes.fromhex("20010db8000000000000000000000001")
B6 = bytes.fromhex("20010db8000000000000000000000002")


def tcp_conversation(src: bytes, dst: bytes, v6: bool = False) -> list[bytes]:
    """A complete TCP connection carrying an HTTP request: IP packets (no link layer)."""
    request = b"GET /x HTTP/1.1\r\nHost: golden.example\r\nUser-Agent: regen\r\n\r\n"
    steps = [
        (src, dst, 40000, 80, dpkt.tcp.TH_SYN, 100, 0, b""),
        (dst, src, 80, 40000, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, 500, 101, b""),
        (src, dst, 40000, 80, dpkt.tcp.TH_ACK, 101, 501, b""),
        (src, dst, 40000, 80, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, 101, 501, request),
        (dst, src, 80, 40000, dpkt.tcp.TH_ACK, 501, 101 + len(request), b"HTTP/1.1 200 OK\r\n\r\n"),
        (src, dst, 40000, 80, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, 101 + len(request), 520, b""),
        (dst, src, 80, 40000, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, 520, 102 + len(request), b""),
        (src, dst, 40000, 80, dpkt.tcp.TH_ACK, 102 + len(request), 521, b""),
    ]
    out = []
    for s, d, sp, dp, flags, seq, ack, data in steps:
        seg = dpkt.tcp.TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, data=data)
        out.append(ip_packet(s, d, 6, seg, v6))
    return out


def dns_query(src: bytes, dst: bytes, name: str, v6: bool = False) -> bytes:
    q = dpkt.dns.DNS(id=0x1234, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    udp = dpkt.udp.UDP(sport=33333, dport=53, data=bytes(q))
    udp.ulen = 8 + len(bytes(q))
    return ip_packet(src, dst, 17, udp, v6)


def ip_packet(src: bytes, dst: bytes, proto: int, payload: dpkt.Packet, v6: bool) -> bytes:
    if v6:
        ip6 = dpkt.ip6.IP6(src=src, dst=dst, nxt=proto, hlim=64, data=payload)
        ip6.plen = len(bytes(payload))
        if hasattr(payload, "sum"):
            payload.sum = 0
            ip6.data = payload
        return bytes(ip6)
    return bytes(dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=7, data=payload))


def eth(ip: bytes, etype: int | None = None, tags: tuple[int, ...] = ()) -> bytes:
    etype = etype if etype is not None else (0x86DD if ip[0] >> 4 == 6 else 0x0800)
    head = b"\x02" * 6 + b"\x04" * 6
    for tpid in tags:
        head += struct.pack("!HH", tpid, 42)
    return head + struct.pack("!H", etype) + ip


def sll(ip: bytes) -> bytes:
    proto = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6, proto) + ip


def sll2(ip: bytes) -> bytes:
    proto = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHIHBB8s", proto, 0, 3, 1, 0, 6, b"\x02" * 6) + ip


def null(ip: bytes) -> bytes:
    return struct.pack("<I", 30 if ip[0] >> 4 == 6 else 2) + ip


def gre(outer_src: bytes, outer_dst: bytes, inner: bytes, key: bool, teb: bool = False) -> bytes:
    flags = 0x2000 if key else 0
    body = struct.pack("!HH", flags, 0x6558 if teb else 0x0800)
    body += struct.pack("!I", 99) if key else b""
    body += eth(inner) if teb else inner
    return bytes(dpkt.ip.IP(src=outer_src, dst=outer_dst, p=47, ttl=64, data=body))


def ipip(outer_src: bytes, outer_dst: bytes, inner: bytes, v6: bool) -> bytes:
    proto = 41 if inner[0] >> 4 == 6 else 4
    if v6:
        outer = dpkt.ip6.IP6(src=outer_src, dst=outer_dst, nxt=proto, hlim=64, data=inner)
        outer.plen = len(inner)
        return bytes(outer)
    return bytes(dpkt.ip.IP(src=outer_src, dst=outer_dst, p=proto, ttl=64, data=inner))


def ext_headers(ip6: bytes) -> bytes:
    """Insert hop-by-hop and destination-options headers after the IPv6 header."""
    nxt, plen = ip6[6], struct.unpack("!H", ip6[4:6])[0]
    hop = bytes([60, 0]) + b"\x01\x04" + bytes(4)  # next: dest options, PadN
    dest = bytes([nxt, 0]) + b"\x01\x04" + bytes(4)
    head = ip6[:4] + struct.pack("!H", plen + 16) + bytes([0]) + ip6[7:40]
    return head + hop + dest + ip6[40:]


def pcap(records: list[bytes], linktype: int, endian: str = "<", nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, rec in enumerate(records):
        sec, frac = int(T0) + i, (123_456_789 if nano else 123_456)
        out += struct.pack(endian + "IIII", sec, frac, len(rec), len(rec)) + rec
    return out


def pcapng(interfaces: list[tuple[int, int | None]], records: list[tuple[int, bytes]]) -> bytes:
    """Sections with IDBs (link type, if_tsresol) and EPBs (interface, packet)."""

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, resol in interfaces:
        opts = b"" if resol is None else struct.pack("<HHB3x", 9, 1, resol)
        out += block(1, struct.pack("<HHI", linktype, 0, 0) + opts + bytes(4))
    for i, (iface, rec) in enumerate(records):
        resol = interfaces[iface][1]
        units = 10 ** (resol or 6)
        ts = int((T0 + i) * units) + 7
        body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(rec), len(rec)) + rec
        out += block(6, body)
    return out


def captures() -> dict[str, bytes]:
    conv4, conv6 = tcp_conversation(A4, B4), tcp_conversation(A6, B6, v6=True)
    q4, q6 = dns_query(C4, D4, "golden.example"), dns_query(A6, B6, "six.example", v6=True)
    raw4 = [*conv4, q4]
    return {
        "ethernet_qinq.pcap": pcap([eth(p, tags=(0x88A8, 0x8100)) for p in raw4], 1),
        "ethernet_vlan_be_ns.pcap": pcap(
            [eth(p, tags=(0x8100,)) for p in [*conv6, q6]], 1, ">", True
        ),
        "sll.pcap": pcap([sll(p) for p in [*raw4, q6]], 113),
        "sll2.pcap": pcap([sll2(p) for p in [*conv6, q4]], 276),
        "null.pcap": pcap([null(p) for p in [*raw4, *conv6]], 0),
        "raw.pcap": pcap([*raw4, q6], 101),
        "ipv6_ext_headers.pcap": pcap([eth(ext_headers(p)) for p in [*conv6, q6]], 1),
        "ipip.pcap": pcap(
            [eth(ipip(C4, D4, p, v6=False)) for p in conv4]
            + [eth(ipip(A6, B6, p, v6=True)) for p in [q4, q6]],
            1,
        ),
        "gre.pcap": pcap(
            [eth(gre(C4, D4, p, key=True)) for p in conv4]
            + [eth(gre(C4, D4, q4, key=False, teb=True))],
            1,
        ),
        "pppoe.pcap": pcap(
            [
                eth(struct.pack("!BBHH", 0x11, 0, 1, len(p) + 2) + b"\x00\x21" + p, 0x8864)
                for p in raw4
            ],
            1,
        ),
        "two_interfaces.pcapng": pcapng(
            [(1, None), (101, 9)],
            [(i % 2, eth(p) if i % 2 == 0 else p) for i, p in enumerate(raw4)],
        ),
    }


def expected(path: Path) -> dict[str, list[dict]]:
    """What vigile reads from ``path``, without file-specific ids, as JSON-ready rows."""
    from vigile.ingest.base import SourceFile
    from vigile.ingest.pcap import PcapReader

    rows: dict[str, list[dict]] = {}

    class Collect:
        def emit(self, table: str, columns: dict, num_rows: int) -> None:
            names = sorted(k for k in columns if k not in ("uid", "source_id"))
            batch = [
                dict(zip(names, vals, strict=True))
                for vals in zip(*(columns[k].to_pylist() for k in names), strict=True)
            ]
            for r in batch:
                r["ts"] = r["ts"].isoformat()
            rows.setdefault(table, []).extend(batch)

        reject = notice = set_log_type = progress = staticmethod(lambda *a, **k: None)

    PcapReader().read(SourceFile.probe(path), Collect())
    return {
        t: sorted(r, key=lambda x: (x["ts"], json.dumps(x, sort_keys=True)))
        for t, r in sorted(rows.items())
    }


def main(write: Callable[[Path, bytes], None] = lambda p, b: p.write_bytes(b)) -> None:
    for name, data in captures().items():
        write(HERE / name, data)
        result = expected(HERE / name)
        (HERE / name).with_suffix(".json").write_text(
            json.dumps(result, indent=1, sort_keys=True) + "\n"
        )
        print(name, {t: len(r) for t, r in result.items()}, file=sys.stderr)


if __name__ == "__main__":
    main()
