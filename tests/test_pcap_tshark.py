"""Every shared capture, flow by flow, against tshark (the real peer).

tshark's field export gives each frame's innermost IP header and ports; the test
sums packets and IP bytes per flow and direction and compares them with the
``conn`` rows vigile stored, then compares DNS query names, TLS SNI, JA3/JA3S and
HTTP Host values with the ``dns``, ``tls`` and ``http`` tables.

Deliberate differences, each applied below where it matters and listed in docs/pcap.md:

* Fragments: vigile does not reassemble IP fragments; later fragments are counted
  as packets of the flow of their first fragment (same source, destination,
  protocol and IP id). tshark runs with reassembly off so both count frames, and
  its later fragments are attributed the same way.
* vigile splits a flow after an inactivity timeout; the totals are compared per
  5-tuple, summed over the pieces.
* ICMP flows have no ports; both sides are keyed by addresses and protocol only.
* DNS names: vigile lower-cases them and escapes unusual bytes as ``\\DDD``
  (decimal, RFC 4343); tshark keeps the case and escapes as ``\\ooo`` (octal). Both
  are turned back into bytes before comparing; tshark prints bytes that are not
  UTF-8 as U+FFFD, so runs of bytes above 0x7F are compared as one character. The
  root name is ``""`` in vigile and ``<Root>`` in tshark. vigile reads DNS on Zeek's DNS ports only.
* QUIC: tshark decrypts QUIC Initial packets and shows their SNI; vigile does not
  decrypt QUIC, so QUIC SNI values are left out of the comparison.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

from conftest import require_tool, shared_data_dir
from vigile.ingest import ingest_file, registered_readers
from vigile.store.duckdb import DuckDBStore

FIELDS = [
    *("frame.protocols", "ip.src", "ip.dst", "ip.proto", "ip.len", "ip.id", "ip.frag_offset"),
    *("ip.flags.mf", "ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.nxt", "ipv6.fraghdr.nxt"),
    *("ipv6.fraghdr.offset", "ipv6.fraghdr.ident", "ipv6.fraghdr.more", "tcp.srcport"),
    *("tcp.dstport", "udp.srcport", "udp.dstport", "dns.qry.name", "dns.flags.response"),
    *("tls.handshake.extensions_server_name", "http.host", "tls.handshake.ja3"),
    "tls.handshake.ja3s",
]
TRANSPORTS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "igmp": 2, "gre": 47}
SEP = "\x1f"
HIGH_RUN = re.compile(rb"[\x80-\xff]+")


def captures() -> list[Path]:
    return sorted(p for p in (shared_data_dir() / "pcap").glob("*/*") if p.is_file())


def tshark_frames(path: Path, tls_ports: Iterable[int] = ()) -> list[dict[str, list[str]]]:
    """tshark's fields of every frame (cached: several tests read the same capture)."""
    return _tshark_frames(path, tuple(sorted(tls_ports)))


@functools.cache
def _tshark_frames(path: Path, tls_ports: tuple[int, ...]) -> list[dict[str, list[str]]]:
    tshark = require_tool("tshark")
    cmd = [tshark, "-r", str(path), "-n", "-T", "fields", "-E", "occurrence=a"]
    for port in tls_ports:
        cmd += ["-d", f"tcp.port=={port},tls"]
    cmd += ["-E", f"aggregator={SEP}", "-E", "separator=\t"]
    cmd += ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
    for f in FIELDS:
        cmd += ["-e", f]
    # DNS names may hold any byte: read them as bytes, one character per byte.
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("latin-1")
    frames = []
    for line in out.splitlines():
        values = line.split("\t")
        frames.append({f: (v.split(SEP) if v else []) for f, v in zip(FIELDS, values, strict=True)})
    return frames


def endpoint(addr: str, port: int) -> tuple[ipaddress.IPv6Address, int]:
    a = ipaddress.ip_address(addr)
    if isinstance(a, ipaddress.IPv4Address):
        a = ipaddress.IPv6Address(f"::ffff:{a}")
    return a, port


def frame_flow(fr: dict[str, list[str]], frag_ports: dict) -> tuple | None:
    """(src endpoint, dst endpoint, proto, ip bytes) of the frame's innermost IP packet."""
    layers = fr["frame.protocols"][0].split(":")
    seen: Counter[str] = Counter()
    last_ip, stop = None, None
    for i, name in enumerate(layers):
        if name in ("ip", "ipv6"):
            last_ip = (name, seen[name])
        elif name in TRANSPORTS and not (name == "udp" and "teredo" in layers[i + 1 : i + 2]):
            if name != "gre":
                stop = (name, seen[name])
            if name != "gre":
                break
        seen[name] += 1
    if last_ip is None:
        return None
    kind, k = last_ip
    src, dst = fr[f"{kind}.src"][k], fr[f"{kind}.dst"][k]
    if kind == "ip":
        ip_bytes, proto = int(fr["ip.len"][k]), int(fr["ip.proto"][k])
        frag = (fr["ip.id"][k], int(fr["ip.frag_offset"][k]), fr["ip.flags.mf"][k])
    else:
        ip_bytes, proto = int(fr["ipv6.plen"][k]) + 40, int(fr["ipv6.nxt"][k])
        frag = None
        if fr["ipv6.fraghdr.ident"]:
            proto = int(fr["ipv6.fraghdr.nxt"][-1])
            frag = tuple(fr[f"ipv6.fraghdr.{n}"][-1] for n in ("ident", "offset", "more"))
            frag = (frag[0], int(frag[1]), frag[2])
    sport = dport = 0
    if stop and stop[0] in ("tcp", "udp"):
        proto = TRANSPORTS[stop[0]]
        sport = int(fr[f"{stop[0]}.srcport"][stop[1]])
        dport = int(fr[f"{stop[0]}.dstport"][stop[1]])
    if frag is not None:
        frag_key = (src, dst, proto, int(frag[0], 0))
        if frag[1] > 0:
            sport, dport = frag_ports.get(frag_key, (0, 0))
        elif frag[2] in ("1", "True"):
            frag_ports[frag_key] = (sport, dport)
    return endpoint(src, sport), endpoint(dst, dport), proto, ip_bytes


def tshark_flows(frames: list[dict[str, list[str]]]) -> dict[tuple, list[int]]:
    flows: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    frag_ports: dict = {}
    for fr in frames:
        got = frame_flow(fr, frag_ports)
        if got is None:
            continue
        src, dst, proto, ip_bytes = got
        lo, hi = sorted([src, dst])
        side = 0 if src == lo else 1
        t = flows[(lo, hi, proto)]
        t[side] += 1
        t[2 + side] += ip_bytes
    return dict(flows)


def vigile_flows(conn: list[dict]) -> dict[tuple, list[int]]:
    flows: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    names = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}
    for r in conn:
        proto = names.get(r["proto"]) or int(r["proto"])
        ported = proto in (6, 17, 132)
        src = endpoint(r["src"], r["src_port"] if ported else 0)
        dst = endpoint(r["dst"], r["dst_port"] if ported else 0)
        lo, hi = sorted([src, dst])
        side = 0 if src == lo else 1
        t = flows[(lo, hi, proto)]
        t[side] += r["orig_pkts"]
        t[1 - side] += r["resp_pkts"]
        t[2 + side] += r["orig_ip_bytes"]
        t[3 - side] += r["resp_ip_bytes"]
    return dict(flows)


def unescape(name: str, base: int) -> bytes:
    """A DNS name with ``\\NNN`` escapes (decimal or octal) back to lower-case bytes."""
    raw = name.encode("latin-1")
    return re.sub(rb"\\(\d{3})", lambda m: bytes([int(m.group(1), base) & 0xFF]), raw).lower()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    s = DuckDBStore(tmp_path_factory.mktemp("pcap") / "t.duckdb")
    readers = registered_readers()
    for path in captures():
        result = ingest_file(s, path, readers)
        assert result.status == "ingested", (path, result.message)
    yield s
    s.close()


def rows(store: DuckDBStore, table: str, path: Path) -> list[dict]:
    source = store.scan("sources").to_pylist()
    ids = [r["source_id"] for r in source if r["path"] == str(path)]
    return [r for r in store.scan(table).to_pylist() if r["source_id"] in ids]


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_flows_match_tshark(store: DuckDBStore, path: Path) -> None:
    expected = tshark_flows(tshark_frames(path))
    got = vigile_flows(rows(store, "conn", path))
    assert got == expected


def dns_names(frames: list[dict[str, list[str]]], queries_only: bool) -> set[bytes]:
    """tshark's DNS names on Zeek's DNS ports (53, 5353, 5355), as bytes."""
    names = set()
    for fr in frames:
        ports = {
            int(p)
            for f in ("udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport")
            for p in fr[f][-1:]
        }
        if not ports & {53, 5353, 5355}:
            continue  # tshark also decodes DNS elsewhere (UDP 5333 in custom_rules_ipv6)
        if queries_only and "0" not in fr["dns.flags.response"]:
            continue
        names |= {b"" if n == "<Root>" else unescape(n, 8) for n in fr["dns.qry.name"]}
    return {HIGH_RUN.sub(b"?", n) for n in names}


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_dns_names_match_tshark(store: DuckDBStore, path: Path) -> None:
    """Every name tshark sees in a query is in ``dns``; every ``dns`` name tshark saw.

    A response whose question differs from its query's is folded into the query's
    row (one row per transaction, as in Zeek), hence the two inclusions.
    """
    frames = tshark_frames(path)
    got = {unescape(r["query"], 10) for r in rows(store, "dns", path) if r["query"] is not None}
    # tshark prints invalid UTF-8 as U+FFFD (with its own idea of where a sequence
    # ends): runs of bytes above 0x7F are compared as one "?" on both sides.
    got = {HIGH_RUN.sub(b"?", n) for n in got}
    assert dns_names(frames, queries_only=True) <= got
    assert got <= dns_names(frames, queries_only=False)


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_tls_and_http_match_tshark(store: DuckDBStore, path: Path) -> None:
    """SNI, JA3, JA3S and HTTP Host against tshark.

    vigile recognises TLS by content on any port (like Zeek's protocol detection);
    tshark is told to decode as TLS the ports where vigile found hellos, so both read
    the same packets. QUIC frames are left out (vigile does not decrypt QUIC). A
    ServerHello is read as soon as the hello message is complete, while tshark needs
    the whole TLS record: JA3S values tshark did not compute may be extra in vigile.
    """
    tls_rows = rows(store, "tls", path)
    ports = {r["dst_port"] for r in tls_rows} - {443}
    frames = [fr for fr in tshark_frames(path, ports) if "quic" not in fr["frame.protocols"][0]]

    def values(field: str) -> set[str]:
        return {v for fr in frames for v in fr[field]}

    assert {r["sni"] for r in tls_rows if r["sni"] is not None} == values(
        "tls.handshake.extensions_server_name"
    )
    assert {r["ja3"] for r in tls_rows if r["ja3"]} == values("tls.handshake.ja3")
    assert values("tls.handshake.ja3s") <= {r["ja3s"] for r in tls_rows if r["ja3s"]}
    http_got = {r["host"] for r in rows(store, "http", path) if r["host"] is not None}
    assert http_got == values("http.host")
