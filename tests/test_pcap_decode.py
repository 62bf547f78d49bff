"""The compiled decoder and pre-filter give what the NumPy code gives.

:func:`vigile.ingest.packet.decode.decode` decodes Ethernet/IP/TCP/UDP packets in
compiled code and leaves the rest to :func:`decode_vectorised`; every field of every
packet must be the same as when the NumPy decoder reads the whole chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_data_dir
from vigile.ingest.packet.classify import DNS_PORTS, HTTP_PREFIXES, STATUS_PREFIX, classify
from vigile.ingest.packet.decode import DECODED_FIELDS, Decoded, decode, decode_vectorised
from vigile.ingest.packet.fragments import FragmentTable
from vigile.ingest.packet.link import u8, u32
from vigile.ingest.packet.pcapfile import Packets, read_packets
from vigile.ingest.packet.records import PAD

GOLDEN = Path(__file__).parent / "golden" / "pcap"


def captures() -> list[Path]:
    shared = sorted(p for p in (shared_data_dir() / "pcap").glob("*/*") if p.is_file())
    return shared + sorted(p for p in GOLDEN.iterdir() if p.suffix in (".pcap", ".pcapng"))


def assert_same(pk: Packets) -> int:
    """Both decoders agree on ``pk``; the number of packets on the compiled path."""
    fast, reference = decode(pk, FragmentTable()), decode_vectorised(pk, FragmentTable())
    for name in DECODED_FIELDS:
        np.testing.assert_array_equal(getattr(fast, name), getattr(reference, name), name)
    return int(fast.ok.sum())


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_same_fields_on_every_capture(path: Path) -> None:
    with path.open("rb") as f:
        for chunk in read_packets(f):
            if isinstance(chunk, Packets):
                assert_same(chunk)


def packets(frames: list[bytes], linktype: int = 1) -> Packets:
    """One chunk holding ``frames`` back to back, as the framer lays them out."""
    buf = np.frombuffer(bytearray(b"".join(frames) + bytes(PAD)), np.uint8)
    sizes = np.array([len(f) for f in frames], np.int64)
    off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    n = len(frames)
    ints = np.zeros(n, np.int64)
    return Packets(buf, off, sizes, sizes, ints, np.full(n, linktype, np.int64), off)


TAGS = st.lists(st.sampled_from([b"\x81\x00", b"\x88\xa8", b"\x91\x00"]), max_size=4)
PROTOS = st.sampled_from([6, 6, 17, 17, 1, 58, 132, 2, 4, 41, 47, 0, 44])
PORTS = st.sampled_from([b"\x00\x35\xc3\x50", b"\x0d\xd8\x00\x35", b"\x01\xbb\x04\x00"])


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """An Ethernet frame with VLAN tags, IP and transport headers, sometimes damaged."""
    v4, proto = draw(st.booleans()), draw(PROTOS)
    etypes = [*draw(TAGS), b"\x08\x00" if v4 else b"\x86\xdd"]
    if draw(st.integers(0, 5)) == 0:
        etypes[-1] = b"\x08\x06"  # ARP
    eth = bytes(12) + etypes[0] + b"".join(b"\x00\x05" + e for e in etypes[1:])
    size = draw(st.integers(0, 90))
    if v4:
        ip = bytes([0x45, 0]) + size.to_bytes(2, "big") + b"\x00\x01"
        ip += draw(
            st.sampled_from([b"\x00\x00", b"\x40\x00", b"\x40\x00", b"\x20\x00", b"\x00\x10"])
        )
        ip += bytes([64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    else:
        ip = b"\x60" + bytes(3) + size.to_bytes(2, "big") + bytes([proto, 64])
        ip += bytes(15) + b"\x01" + bytes(14) + b"\x02\x00"
    frame = bytearray(eth + ip + draw(PORTS) + draw(st.binary(max_size=40)))
    for _ in range(draw(st.integers(0, 4)) // 2):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    if draw(st.integers(0, 3)) == 0:
        frame = frame[: draw(st.integers(0, len(frame)))]
    return bytes(frame)


@settings(max_examples=300)
@given(st.lists(frames(), min_size=1, max_size=12), st.sampled_from([1, 1, 1, 101, 113]))
def test_same_fields_on_any_frame(frames: list[bytes], linktype: int) -> None:
    assert_same(packets(frames, linktype))


def reference_kinds(pk: Packets, d: Decoded) -> np.ndarray:
    """The metadata pre-filter written with NumPy over whole arrays."""
    v, po, cap, proto = pk.buf, d.payload_off, d.payload_cap, d.proto
    first4 = np.where(cap >= 4, u32(v, po), -1)
    tcp, udp = d.ok & (proto == 6), d.ok & (proto == 17)
    on_dns = np.isin(d.sport, DNS_PORTS) | np.isin(d.dport, DNS_PORTS)
    dns_udp = udp & on_dns & (cap >= 12)
    dns_tcp = tcp & ((d.sport == 53) | (d.dport == 53)) & (cap >= 14)
    req = tcp & (cap >= 14) & np.isin(first4, HTTP_PREFIXES)
    status = tcp & (first4 == STATUS_PREFIX)
    ctype = u8(v, po)
    hello = tcp & (cap >= 6) & (u8(v, po + 1) == 3)
    hello &= ((ctype == 22) & np.isin(u8(v, po + 5), (1, 2))) | np.isin(ctype, (20, 21))
    return np.select([dns_udp, dns_tcp, req, status, hello], [1, 2, 3, 4, 5], 0)


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_metadata_kinds_on_every_capture(path: Path) -> None:
    with path.open("rb") as f:
        for chunk in read_packets(f):
            if isinstance(chunk, Packets):
                d = decode(chunk, FragmentTable())
                args = (d.ok, d.proto, d.sport, d.dport, d.payload_off, d.payload_cap)
                got = classify(chunk.buf, *args)
                np.testing.assert_array_equal(got, reference_kinds(chunk, d))
