"""The compiled DNS path (whole chunks) gives what the one-message parser gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.ingest.packet import dns
from vigile.ingest.packet.decode import decode
from vigile.ingest.packet.dnsbatch import parse_batch
from vigile.ingest.packet.dnsrows import qtype_names
from vigile.ingest.packet.fragments import FragmentTable
from vigile.ingest.packet.pcapfile import Packets, read_packets

CAPTURES = ["dns-tunnel-iodine.pcap", "bad-dns-traffic.pcap", "dns_fragmented.pcap"]
CAPTURES += ["dns-invalid-chars.pcap", "dns_long_domainname.pcap", "6in4tunnel.pcap"]


def reference(payload: bytes) -> dns.DnsMessage | None:
    try:
        return dns.parse(payload)
    except dns.DnsError:
        return None


def check(payloads: list[bytes]) -> int:
    """Batch-parse ``payloads``; every message the batch path reads must match."""
    blob = b"".join(payloads) + bytes(64)
    view = np.frombuffer(blob, np.uint8)
    sizes = np.array([len(p) for p in payloads], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    fast = 0
    for payload, got in zip(payloads, parse_batch(view, starts, sizes), strict=True):
        if got is not None:
            fast += 1
            assert got == reference(payload)
    return fast


@pytest.mark.parametrize("name", CAPTURES)
def test_batch_matches_parser_on_real_messages(shared_data: Path, name: str) -> None:
    payloads = []
    for chunk in read_packets((shared_data / "pcap/ndpi" / name).open("rb")):
        if not isinstance(chunk, Packets):
            continue
        d = decode(chunk, FragmentTable())
        for i in np.flatnonzero(d.ok & (d.proto == 17) & (d.payload_cap > 0)):
            start = int(d.payload_off[i])
            payloads.append(chunk.buf[start : start + int(d.payload_cap[i])].tobytes())
    fast = check(payloads)
    # Names with bytes that need escaping are read in compiled code too.
    assert fast > 0


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=8))
def test_batch_matches_parser_on_any_bytes(payloads: list[bytes]) -> None:
    header = bytes.fromhex("12340100000100000000000003")
    check([p if i % 2 else header + p for i, p in enumerate(payloads)])


@st.composite
def questions(draw: st.DrawFn) -> bytes:
    """A header, one question of mostly plain labels, then arbitrary answer bytes."""
    flags = draw(st.sampled_from([0x0100, 0x8180, 0x8183, 0x2800]))
    an = draw(st.integers(0, 3))
    head = bytes.fromhex("beef") + flags.to_bytes(2, "big") + b"\x00\x01"
    head += an.to_bytes(2, "big") + bytes(4)
    alphabet = st.sampled_from(b"abcXYZ019-_.\\\x00\xff")
    labels = draw(st.lists(st.lists(alphabet, min_size=1, max_size=10), max_size=5))
    name = b"".join(bytes([len(lab)]) + bytes(lab) for lab in labels) + b"\x00"
    qtype = draw(st.integers(0, 65535)).to_bytes(2, "big") + b"\x00\x01"
    return head + name + qtype + draw(st.binary(max_size=40))


@settings(max_examples=300)
@given(st.lists(questions(), min_size=1, max_size=6))
def test_batch_matches_parser_on_questions(payloads: list[bytes]) -> None:
    check(payloads)


GROUPS = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x2001, 0xDB8, 0xABCD])
LABEL_BYTES = st.sampled_from(b"abcXYZ019-_.\\\x00\xff ")


@st.composite
def names(draw: st.DrawFn) -> bytes:
    """Labels, ending at the root or at a compression pointer into the question."""
    labels = draw(st.lists(st.lists(LABEL_BYTES, min_size=1, max_size=6), max_size=3))
    wire = b"".join(bytes([len(lab)]) + bytes(lab) for lab in labels)
    return wire + draw(st.sampled_from([b"\x00", b"\xc0\x0c", b"\xc0\x0e", b"\xc0\xff"]))


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """One answer record of a common type, its data mostly well formed."""
    rtype = draw(st.sampled_from([1, 28, 5, 2, 12, 15, 16, 10, 99, 65, 1234]))
    if rtype == 1:
        rdata = draw(st.binary(min_size=3, max_size=5))
    elif rtype == 28:
        groups = draw(st.lists(GROUPS, min_size=8, max_size=8))
        rdata = b"".join(g.to_bytes(2, "big") for g in groups)
    elif rtype in (2, 5, 12, 15):
        rdata = (b"\x00\x0a" if rtype == 15 else b"") + draw(names())
    elif rtype == 16:
        parts = draw(st.lists(st.binary(max_size=6), max_size=3))
        rdata = b"".join(bytes([len(p) + draw(st.integers(0, 1))]) + p for p in parts)
    else:
        rdata = draw(st.binary(max_size=8))
    owner = draw(st.sampled_from([b"\xc0\x0c", b"\x00", b"\x01a\x00"]))
    ttl = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    return (
        owner + rtype.to_bytes(2, "big") + b"\x00\x01" + ttl + len(rdata).to_bytes(2, "big") + rdata
    )


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """A response (sometimes cut short) with one question and well-formed answers."""
    answers = draw(st.lists(records(), max_size=4))
    flags = draw(st.sampled_from([0x8180, 0x8183, 0x8580, 0x0100]))
    head = bytes.fromhex("beef") + flags.to_bytes(2, "big") + b"\x00\x01"
    head += (len(answers) + draw(st.integers(0, 1))).to_bytes(2, "big") + bytes(4)
    message = head + draw(names()) + b"\x00\x01\x00\x01" + b"".join(answers)
    return message[: len(message) - draw(st.integers(0, 3))]


@settings(max_examples=400)
@given(st.lists(responses(), min_size=1, max_size=6))
def test_batch_matches_parser_on_answers(payloads: list[bytes]) -> None:
    check(payloads)


def test_query_type_names_for_every_code() -> None:
    codes = pa.array([*range(65536), None], pa.int32())
    expected = [dns.QTYPES.get(code) for code in range(65536)] + [None]
    assert qtype_names(codes).to_pylist() == expected
