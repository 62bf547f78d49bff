"""The compiled hello and head reader gives what the Python parsers give.

:func:`read_heads` must agree with :mod:`.tls` and :mod:`.http` on every packet it
reads (and leave the others to them). One :class:`.tls.FieldCache` is shared by all
examples, so a key that two different hellos shared would show up as a mismatch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.ingest.packet import http, tls
from vigile.ingest.packet.classify import HTTP_REQUEST, HTTP_STATUS, TLS_HELLO, classify
from vigile.ingest.packet.decode import decode
from vigile.ingest.packet.fragments import FragmentTable
from vigile.ingest.packet.headkernel import DONE, NOT_HEAD, SLOW, read_heads, text
from vigile.ingest.packet.httprows import request_texts
from vigile.ingest.packet.pcapfile import Damage, read_packets

CACHE = tls.FieldCache()
u16 = st.integers(0, 0xFFFF)
GREASE = st.sampled_from([0x0A0A, 0x1A1A, 0xFAFA])


def _vec(items: list[int], width: int = 2) -> bytes:
    body = b"".join(i.to_bytes(2, "big") for i in items)
    return len(body).to_bytes(width, "big") + body


@st.composite
def extensions(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([0, 10, 11, 13, 16, 43, 5, 23, 0xFF01, 0x2A2A]))
    if kind == 0:
        name = draw(st.binary(max_size=20) | st.text(max_size=12).map(str.encode))
        entry = b"\x00" + len(name).to_bytes(2, "big") + name
        body = draw(st.sampled_from([_len2(entry), entry[: draw(st.integers(0, 6))]]))
    elif kind in (10, 13):
        body = _vec(draw(st.lists(u16 | GREASE, max_size=6)))
    elif kind == 11:
        formats = draw(st.binary(max_size=3))
        body = bytes([len(formats)]) + formats
    elif kind == 16:
        names = draw(st.lists(st.binary(min_size=1, max_size=8), max_size=3))
        body = _len2(b"".join(bytes([len(n)]) + n for n in names))
    elif kind == 43:
        body = _vec(draw(st.lists(st.sampled_from([0x0303, 0x0304, 0x7F1C]) | GREASE)), 1)
    else:
        body = draw(st.binary(max_size=10))
    size = len(body) if draw(st.booleans()) else draw(st.integers(0, 40))
    return kind.to_bytes(2, "big") + size.to_bytes(2, "big") + body


def _len2(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


@st.composite
def hellos(draw: st.DrawFn) -> bytes:
    """A TLS record (or a few) carrying a ClientHello or ServerHello, often damaged."""
    client = draw(st.booleans())
    body = draw(st.sampled_from([b"\x03\x03", b"\x03\x01", b"\x02\x00"])) + bytes(32)
    session = draw(st.binary(max_size=33))
    body += bytes([len(session)]) + session
    if client:
        body += _vec(draw(st.lists(u16 | GREASE, max_size=8))) + b"\x01\x00"
    else:
        body += draw(u16).to_bytes(2, "big") + b"\x00"
    exts = b"".join(draw(st.lists(extensions(), max_size=7)))
    body += _len2(exts)[: draw(st.integers(0, len(exts) + 2))] if draw(st.booleans()) else b""
    body += draw(st.binary(max_size=4))
    size = len(body) if draw(st.integers(0, 4)) else draw(st.integers(0, len(body) + 8))
    msg = bytes([1 if client else 2]) + size.to_bytes(3, "big") + body
    cut = draw(st.integers(0, len(msg) + 3))
    record = b"\x16\x03\x01" + _len2(msg[:cut] if draw(st.integers(0, 5)) == 0 else msg)
    before = draw(st.sampled_from([b"", b"\x14\x03\x03\x00\x01\x01"]))
    return before + record + draw(st.binary(max_size=6))


def _python_hello(payload: bytes) -> tuple[tls.Fields, str | None] | None:
    try:
        msg = tls.handshake_message(payload)
        if msg is None:
            return None
        h = tls.parse_hello(msg)
    except tls.TlsError:
        return None
    return tls.fields(h), h.sni


def _kernel(payloads: list[bytes], kind: int) -> tuple[memoryview, list[list[int]], np.ndarray]:
    v = np.frombuffer(b"".join(payloads), np.uint8)
    off = np.cumsum([0] + [len(p) for p in payloads[:-1]])
    cap = np.array([len(p) for p in payloads], np.int64)
    rows, keys = read_heads(v, np.full(len(payloads), kind, np.int64), off, cap)
    return memoryview(v.data), rows.tolist(), keys


def _kernel_hello(mem: memoryview, row: list[int], keys: np.ndarray) -> tuple:
    key = keys[row[3] : row[3] + row[4]].tobytes()
    return CACHE.get(key, mem[row[1] : row[1] + row[2]]), text(mem, row[5], row[6])


@settings(max_examples=600)
@given(st.lists(hellos(), min_size=1, max_size=5))
def test_hellos_match_the_python_parser(payloads: list[bytes]) -> None:
    mem, rows, keys = _kernel(payloads, TLS_HELLO)
    for payload, row in zip(payloads, rows, strict=True):
        assert row[0] in (SLOW, DONE)
        if row[0] == DONE:
            assert _kernel_hello(mem, row, keys) == _python_hello(payload)


def test_a_whole_hello_is_read_by_the_kernel() -> None:
    name = b"example.org"
    sni = b"\x00\x00" + _len2(_len2(b"\x00" + _len2(name)))
    exts = sni + b"\x00\x0a\x00\x04\x00\x02\x00\x1d" + b"\x00\x2b\x00\x03\x02\x03\x04"
    body = b"\x03\x03" + bytes(32) + b"\x00" + _vec([0x1301, 0x0A0A]) + b"\x01\x00" + _len2(exts)
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    payload = b"\x16\x03\x01" + _len2(msg)
    mem, rows, keys = _kernel([payload], TLS_HELLO)
    assert rows[0][0] == DONE
    fields, name = _kernel_hello(mem, rows[0], keys)
    assert name == "example.org" and fields[:2] == (True, "TLSv13")
    assert (fields, name) == _python_hello(payload)


HEADER_NAMES = st.sampled_from(["Host", "HOST", " host ", "User-Agent", "user-agent", "Referer"])


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([*http.METHODS, b"get", b"GETX", b"PROPPATCH"]))
    uri = draw(st.sampled_from([b"/", b"/a?b=c", "/é".encode(), b"/a b", b"\xff"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTX/1.1", b"HTTP"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lines = [method + b" " + uri + b" " + version]
    for _ in range(draw(st.integers(0, 5))):
        name = draw(HEADER_NAMES | st.text(max_size=6)).encode()
        value = draw(st.text(max_size=10)).encode() + draw(st.sampled_from([b"", b" \t", b"\x0b"]))
        lines.append(name + draw(st.sampled_from([b":", b": ", b""])) + value)
    head = eol.join(lines) + draw(st.sampled_from([b"\r\n\r\n", b"\r\n", b"", b"\n\n"]))
    return head + draw(st.binary(max_size=8))


def request(v: np.ndarray | memoryview, row: list[int]) -> http.HttpRequest:
    """The request of one DONE row, read in columns as ingest reads a chunk's."""
    v = np.frombuffer(v, np.uint8) if isinstance(v, memoryview) else v
    method, host, uri, referrer, agent = (a[0].as_py() for a in request_texts(v, np.array([row])))
    return http.HttpRequest(method, uri, host, agent, referrer)


@settings(max_examples=600)
@given(st.lists(heads(), min_size=1, max_size=5))
def test_request_heads_match_the_python_parser(payloads: list[bytes]) -> None:
    mem, rows, _ = _kernel(payloads, HTTP_REQUEST)
    for payload, row in zip(payloads, rows, strict=True):
        if row[0] == DONE:
            assert request(mem, row) == http.parse_request(payload)
        elif row[0] == NOT_HEAD:
            assert http.parse_request(payload) is None


@given(st.lists(st.binary(min_size=4, max_size=16).map(lambda b: b"HTTP" + b), min_size=1))
def test_status_lines_match_the_python_parser(payloads: list[bytes]) -> None:
    _, rows, _ = _kernel(payloads, HTTP_STATUS)
    for payload, row in zip(payloads, rows, strict=True):
        assert row[0] == DONE
        assert (row[1] if row[1] >= 0 else None) == http.parse_status(payload)


@pytest.mark.parametrize("folder", ["ndpi", "caldera"])
def test_real_captures_read_the_same_both_ways(shared_data: Path, folder: str) -> None:
    done = 0
    for path in sorted((shared_data / "pcap" / folder).glob("*")):
        with path.open("rb") as f:
            for chunk in read_packets(f):
                if isinstance(chunk, Damage) or not len(chunk):
                    continue
                d = decode(chunk, FragmentTable())
                po, cap = d.payload_off, d.payload_cap
                kind = classify(chunk.buf, d.ok, d.proto, d.sport, d.dport, po, cap)
                i = np.flatnonzero((kind >= HTTP_REQUEST) & (kind <= TLS_HELLO))
                rows, keys = read_heads(chunk.buf, kind[i], po[i], cap[i])
                mem = memoryview(chunk.buf.data)
                for j, row in zip(i.tolist(), rows.tolist(), strict=True):
                    payload = mem[po[j] : po[j] + cap[j]].tobytes()
                    if row[0] != DONE:
                        continue
                    done += 1
                    if kind[j] == TLS_HELLO:
                        assert _kernel_hello(mem, row, keys) == _python_hello(payload)
                    elif kind[j] == HTTP_REQUEST:
                        assert request(chunk.buf, row) == http.parse_request(payload)
    assert done > 20
