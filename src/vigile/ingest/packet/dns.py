"""DNS messages (RFC 1035) from UDP payloads or TCP segments.

Hand-written rather than dnspython: dnspython raises on the first oddity and builds
full record objects, while ingest needs the question, the response code and the
answer data of damaged, truncated or deliberately odd messages (tunnels) at speed.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
    48: "DNSKEY", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 255: "*", 257: "CAA",
    10: "NULL", 252: "AXFR", 251: "IXFR",
}  # fmt: skip
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip
NAME_TYPES = (2, 5, 12)
MAX_POINTERS = 32
#: Bytes shown as themselves in a name; every other byte is written as ``\\DDD``.
PLAIN = bytes(b for b in range(0x21, 0x7F) if b not in (0x2E, 0x5C))
PLAIN_OR_DOT = PLAIN + b"."
ESCAPES = {b: f"\\{b:03d}" for b in range(256) if b not in PLAIN}


class DnsError(ValueError):
    """The bytes are not a DNS message."""


@dataclass
class DnsMessage:
    """The parts of a DNS message that the ``dns`` table keeps."""

    trans_id: int
    response: bool
    rcode: int
    query: str | None
    qtype: int | None
    answers: list[str] = field(default_factory=list)
    ttls: list[float] = field(default_factory=list)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """The name at ``off`` (following compression pointers) and the offset after it.

    Bytes outside printable ASCII, dots and backslashes inside labels are escaped as
    ``\\\\DDD`` (RFC 4343 presentation format).

    >>> read_name(b"\\x03www\\x07example\\x03com\\x00", 0)
    ('www.example.com', 17)
    """
    labels: list[bytes] = []
    end, jumps, size = -1, 0, len(msg)
    while True:
        if off >= size:
            raise DnsError("name runs past the message")
        n = msg[off]
        if n == 0:
            return _text(labels), end if end >= 0 else off + 1
        if n >= 0xC0:
            if off + 1 >= size or jumps >= MAX_POINTERS:
                raise DnsError("bad compression pointer")
            if end < 0:
                end = off + 2
            off, jumps = (n & 0x3F) << 8 | msg[off + 1], jumps + 1
            continue
        if n & 0xC0:
            raise DnsError("unknown label type")
        if off + 1 + n > size:
            raise DnsError("label runs past the message")
        labels.append(msg[off + 1 : off + 1 + n])
        off += 1 + n


def _text(labels: list[bytes]) -> str:
    name = b".".join(labels)
    if not name.translate(None, PLAIN_OR_DOT) and name.count(b".") == len(labels) - 1:
        return name.decode("ascii")
    return ".".join(label.decode("latin-1").translate(ESCAPES) for label in labels)


def parse(msg: bytes) -> DnsMessage:
    """Parse one DNS message; raises :class:`DnsError` when it is not one.

    >>> m = parse(bytes.fromhex("abcd01000001000000000000") + b"\\x01a\\x00\\x00\\x01\\x00\\x01")
    >>> m.trans_id, m.query, m.qtype, m.response
    (43981, 'a', 1, False)
    """
    if len(msg) < 12:
        raise DnsError("shorter than a DNS header")
    tid, flags, qd, an = struct.unpack_from("!HHHH", msg)
    if flags >> 11 & 0xF > 6 or qd > 16:
        raise DnsError("not a DNS header")
    out = DnsMessage(tid, bool(flags & 0x8000), flags & 0xF, None, None)
    off = 12
    for i in range(qd):
        name, off = read_name(msg, off)
        if off + 4 > len(msg):
            raise DnsError("question runs past the message")
        if i == 0:
            out.query, out.qtype = name.lower(), struct.unpack_from("!H", msg, off)[0]
        off += 4
    read_answers(msg, off, an, out)
    return out


def read_answers(msg: bytes, off: int, count: int, out: DnsMessage) -> None:
    """Append ``count`` answer records from ``off`` to ``out`` (as many as are whole)."""
    for _ in range(count):
        try:
            off = _answer(msg, off, out)
        except DnsError:
            break  # keep the answers read so far: a truncated response is still useful


def skip_name(msg: bytes, off: int) -> int:
    """The offset after the name at ``off``, without reading it (owner names of answers).

    >>> skip_name(bytes([1, 97, 0xC0, 0]) + b"rest", 0)
    4
    """
    size = len(msg)
    while off < size:
        n = msg[off]
        if n == 0:
            return off + 1
        if n >= 0xC0:
            if off + 1 >= size:
                break
            return off + 2
        if n & 0xC0:
            raise DnsError("unknown label type")
        off += 1 + n
    raise DnsError("name runs past the message")


def _answer(msg: bytes, off: int, out: DnsMessage) -> int:
    off = skip_name(msg, off)
    if off + 10 > len(msg):
        raise DnsError("record runs past the message")
    rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", msg, off)
    off += 10
    rdata = msg[off : off + rdlen]
    if len(rdata) < rdlen:
        raise DnsError("record data runs past the message")
    if rtype == 1 and rdlen == 4:
        text = str(ipaddress.IPv4Address(rdata))
    elif rtype == 28 and rdlen == 16:
        text = str(ipaddress.IPv6Address(rdata))
    elif rtype in NAME_TYPES:
        text = read_name(msg, off)[0]
    elif rtype == 15 and rdlen > 2:
        text = read_name(msg, off + 2)[0]
    elif rtype == 16:
        text = _txt(rdata)
    else:
        text = f"<{QTYPES.get(rtype, rtype)}>"
    out.answers.append(text)
    out.ttls.append(float(ttl))
    return off + rdlen


def _txt(rdata: bytes) -> str:
    """Each character-string as ``TXT <length> <text>``, as Zeek writes TXT answers."""
    parts, i = [], 0
    while i < len(rdata):
        raw = rdata[i + 1 : i + 1 + rdata[i]]
        parts.append(f"TXT {len(raw)} {raw.decode('utf-8', 'backslashreplace')}")
        i += 1 + rdata[i]
    return " ".join(parts)
