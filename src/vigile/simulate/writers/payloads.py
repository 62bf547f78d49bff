"""Application payloads of exact sizes: DNS, HTTP/1.1, TLS 1.3 hellos and records, NTP.

:mod:`.services` picks the builder of each connection.

Each builder returns (originator bytes, responder bytes) of exactly the sizes the
conn row says, so the capture and the Zeek logs of a run agree byte for byte.
References: RFC 1035 (DNS), RFC 9112 (HTTP/1.1), RFC 8446 (TLS 1.3), RFC 5905 (NTP).
"""

from __future__ import annotations

import struct

import numpy as np

from vigile.simulate.flows import METHODS, Flows, Vocabs

_FILL = bytes(np.random.default_rng(0).integers(0, 256, 1 << 16, dtype=np.uint8))


def fill(n: int) -> bytes:
    """``n`` bytes that look random (encrypted data, nonces), the same in every run."""
    reps = n // len(_FILL) + 1
    return (_FILL * reps)[:n] if n > len(_FILL) else _FILL[:n]


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def _record_data(qtype: int, size: int) -> bytes:
    """Data of a TXT or NULL answer filling a record of ``size`` bytes (12 of them header)."""
    data = fill(size - 12)
    if qtype == 16:  # TXT: one character-string of printable data
        text = data[: size - 13].hex()[: size - 13].encode()
        data = bytes([len(text)]) + text
    return data


def _query_size(v: Vocabs, f: Flows, i: int) -> int:
    return 12 + len(_qname(v.name.values[f.name[i]])) + 4


def dns(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    ident = round(float(f.ts[i]) * 1e6) & 0xFFFF  # as writers.zeek.dns_ids
    question = _qname(v.name.values[f.name[i]]) + struct.pack("!HH", int(f.qtype[i]), 1)
    query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question
    if f.rcode[i] < 0:
        return query, b""
    answer = b""
    size = rb - len(query)
    if f.answer[i] >= 0:
        ip = bytes(int(x) for x in v.addr.values[f.answer[i]].split("."))
        answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + ip
    elif size > 12:
        data = _record_data(int(f.qtype[i]), size)
        answer = struct.pack("!HHHIH", 0xC00C, int(f.qtype[i]), 1, 60, len(data)) + data
    flags = 0x8180 | max(0, int(f.rcode[i]))
    head = struct.pack("!HHHHHH", ident, flags, 1, 1 if answer else 0, 0, 0)
    return query, head + question + answer


#: TTL of the TXT and NULL answers :func:`dns` writes (A answers: 300 s).
RECORD_TTL = 60.0


def record_answers(v: Vocabs, f: Flows) -> dict[int, str]:
    """The TXT and NULL answers of the rows that have one, as Zeek writes them in dns.log.

    Zeek's base DNS scripts write a TXT answer as ``TXT <length> <string>`` and a
    record type it has no event for (NULL) as ``<unknown type=10>``.
    """
    rows = np.flatnonzero((f.answer < 0) & (f.rcode >= 0) & ((f.qtype == 16) | (f.qtype == 10)))
    out = {}
    for i in rows.tolist():
        size = int(f.rbytes[i]) - _query_size(v, f, i)
        if size <= 12:
            continue
        if f.qtype[i] == 16:
            data = _record_data(16, size)
            out[i] = f"TXT {data[0]} {data[1:].decode()}"
        else:
            out[i] = "<unknown type=10>"
    return out


def http(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    host = v.name.values[f.name[i]] if f.name[i] >= 0 else None
    uri = v.uri.values[f.uri[i]] if f.uri[i] >= 0 else "/"
    lines = [f"{METHODS[f.method[i]] or 'GET'} {uri} HTTP/1.1"]
    lines += [f"Host: {host}"] if host else []
    if f.agent[i] >= 0:
        lines.append(f"User-Agent: {v.agent.values[f.agent[i]]}")
    lines.append("Accept: */*")
    head = "\r\n".join(lines) + "\r\n"
    pad = ob - len(head) - len("X-Pad: \r\n\r\n")
    request = (head + (f"X-Pad: {'a' * pad}\r\n" if pad >= 0 else "") + "\r\n").encode()
    status = int(f.status[i]) or 200
    body, extra = (int(x[0]) for x in response_body(np.array([rb]), np.array([status])))
    top = (
        f"HTTP/1.1 {status} OK\r\nContent-Type: application/octet-stream{' ' * extra}"
        f"\r\nContent-Length: {body}\r\n\r\n"
    ).encode()
    return request[:ob] if len(request) > ob else request, top + fill(body)


#: The response head of :func:`http` without its status code and Content-Length digits.
_HEAD = len("HTTP/1.1  OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \r\n\r\n")


def response_body(rbytes: np.ndarray, status: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body length of each HTTP response of ``rbytes`` bytes, and the spaces its head needs.

    The Content-Length's own digits count toward the head, so a body of ``d`` digits is
    ``rbytes - head - d``; where no ``d`` fits (at 99 -> 100, say), one space after the
    Content-Type value (optional whitespace, RFC 9110 5.6.3) makes it fit.

    >>> response_body(np.array([200, 179]), np.array([200, 200]))
    (array([120,  99]), array([0, 1]))
    """
    status = np.where(status > 0, status, 200)
    room = rbytes - _HEAD - np.char.str_len(status.astype(str))
    body, spaces = np.zeros(len(rbytes), np.int64), np.zeros(len(rbytes), np.int64)
    found = np.zeros(len(rbytes), bool)
    for extra in (0, 1):
        for digits in range(1, 13):
            size = room - extra - digits
            fits = ~found & (size >= 0) & (np.char.str_len(size.clip(0).astype(str)) == digits)
            body, spaces, found = (
                np.where(fits, size, body),
                np.where(fits, extra, spaces),
                found | fits,
            )
    return body, spaces


def _records(total: int) -> bytes:
    """TLS application-data records filling exactly ``total`` bytes (0 or >= 6)."""
    out = []
    while total > 0:
        n = min(total, 16384 + 5)
        if 0 < total - n < 6:
            n -= 6
        out.append(struct.pack("!BHH", 23, 0x0303, n - 5) + fill(n - 5))
        total -= n
    return b"".join(out)


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def client_hello(sni: str | None, size: int) -> bytes:
    """A TLS 1.3 ClientHello record of exactly ``size`` bytes (padding extension)."""
    exts = b""
    if sni:
        name = sni.encode()
        exts += _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    exts += _ext(10, struct.pack("!HH", 2, 0x001D))  # supported_groups: x25519
    exts += _ext(13, struct.pack("!HHH", 4, 0x0403, 0x0804))  # signature_algorithms
    exts += _ext(43, bytes([2]) + struct.pack("!H", 0x0304))  # supported_versions
    exts += _ext(51, struct.pack("!HHH", 36, 0x001D, 32) + fill(32))  # key_share
    fixed = 5 + 4 + 2 + 32 + 33 + 2 + 6 + 2 + 2 + len(exts) + 4
    exts += _ext(21, bytes(max(0, size - fixed)))  # padding (RFC 7685)
    suites = struct.pack("!HHHH", 6, 0x1301, 0x1302, 0x1303)
    body = struct.pack("!H", 0x0303) + fill(32) + bytes([32]) + fill(32) + suites + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = struct.pack("!I", (1 << 24) | len(body))[:4] + body
    return struct.pack("!BHH", 22, 0x0301, len(hs)) + hs


def server_hello() -> bytes:
    exts = _ext(43, struct.pack("!H", 0x0304)) + _ext(51, struct.pack("!HH", 0x001D, 32) + fill(32))
    body = struct.pack("!H", 0x0303) + fill(32) + bytes([32]) + fill(32)
    body += struct.pack("!HB", 0x1301, 0) + struct.pack("!H", len(exts)) + exts
    hs = struct.pack("!I", (2 << 24) | len(body)) + body
    ccs = struct.pack("!BHHB", 20, 0x0303, 1, 1)
    return struct.pack("!BHH", 22, 0x0303, len(hs)) + hs + ccs


def tls(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    sni = v.name.values[f.name[i]] if f.name[i] >= 0 else None
    hello_size = min(ob, 517)
    if 0 < ob - hello_size < 6:
        hello_size = ob
    hello = client_hello(sni, hello_size)
    sh = server_hello()
    rest = rb - len(sh)
    if 0 < rest < 6:
        rest = 0
    return hello + _records(ob - len(hello)), sh + _records(max(rest, 0))


def ntp(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    now = int(f.ts[i]) + 2208988800  # NTP era 0 starts in 1900
    client = struct.pack("!BBbb", 0x23, 0, 10, -20) + bytes(36) + struct.pack("!II", now, 0)
    server = (
        struct.pack("!BBbb", 0x24, 2, 10, -20)
        + bytes(12)
        + struct.pack("!IIIIII", now, 0, now, 0, now, 0)
        + struct.pack("!II", now, 0)
    )
    return client[:ob], server[:rb]
