"""Minimal ASN.1 DER encoding (ITU-T X.690) for the simulator's Kerberos, LDAP and SNMP.

Written by hand rather than with an ASN.1 library because the simulator needs
messages of an exact byte size, found by growing one field until the whole message
fits (:func:`fit`); a handful of fixed-shape messages need only tag, length and value.
tshark's dissectors (a real peer) check the result in the tests.
"""

from __future__ import annotations

from collections.abc import Callable

#: Universal tags used here.
BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID, ENUMERATED = 1, 2, 3, 4, 5, 6, 10
SEQUENCE, GENERAL_STRING, GENERALIZED_TIME = 0x30, 0x1B, 0x18


def tlv(tag: int, body: bytes) -> bytes:
    """One DER element: tag byte, definite length (short or long form), value.

    >>> tlv(OCTET_STRING, b"ab").hex()
    '04026162'
    >>> len(tlv(OCTET_STRING, bytes(200)))
    203
    """
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def seq(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def ctx(n: int, *parts: bytes) -> bytes:
    """A constructed context-specific element ``[n]`` (explicit tagging)."""
    return tlv(0xA0 | n, b"".join(parts))


def app(n: int, *parts: bytes) -> bytes:
    """A constructed application element ``[APPLICATION n]`` (n < 31)."""
    return tlv(0x60 | n, b"".join(parts))


def integer(value: int) -> bytes:
    """A non-negative INTEGER in the fewest bytes (a leading 0 keeps it positive).

    >>> integer(5).hex(), integer(128).hex()
    ('020105', '02020080')
    """
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def integer_of_length(size: int, seed: int) -> bytes:
    """An INTEGER whose value takes exactly ``size`` bytes (1 to 4), derived from ``seed``."""
    low = 0 if size == 1 else 1 << (8 * (size - 1))
    return integer(low + seed % ((1 << (8 * size - 1)) - low))


def octets(data: bytes) -> bytes:
    return tlv(OCTET_STRING, data)


def oid(text: str) -> bytes:
    """An OBJECT IDENTIFIER from dotted text.

    >>> oid("1.3.6.1.2.1.1.3.0").hex()
    '06082b06010201010300'
    """
    arcs = [int(x) for x in text.split(".")]
    out = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def widen(element: bytes) -> bytes:
    """The same element with its outermost length one byte longer (BER long form).

    >>> widen(bytes.fromhex("0401ff")).hex()
    '048101ff'
    """
    first = element[1]
    if not first & 0x80:
        return bytes([element[0], 0x81, first]) + element[2:]
    count = first & 0x7F
    return bytes([element[0], 0x80 | (count + 1), 0]) + element[2:]


def fit(make: Callable[[int, int], bytes], size: int, knobs: range = range(4)) -> bytes:
    """``make(pad, knob)`` of exactly ``size`` bytes, for the largest ``pad`` that fits.

    ``make`` must grow by at least one byte per unit of ``pad``. DER lengths grow a
    byte at 128, 256, 65,536 bytes, so some sizes are skipped by ``pad`` alone;
    ``knob`` (a second field elsewhere in the message) closes those gaps. A size no
    DER element can have (130 bytes: a 127-byte value takes 129, a 128-byte one 131)
    is reached by writing the outermost length one byte longer, which BER allows
    (X.690 8.1.3.2) and decoders of SNMP, LDAP and Kerberos accept.

    Raises:
        ValueError: no ``pad >= 0`` and knob give ``size`` (the size is too small).
    """
    found = _fit(make, size, knobs)
    if found is None and size > 2:
        smaller = _fit(make, size - 1, knobs)
        found = widen(smaller) if smaller is not None else None
    if found is None:
        raise ValueError(f"no message of {size} bytes")
    return found


def _fit(make: Callable[[int, int], bytes], size: int, knobs: range) -> bytes | None:
    for knob in knobs:
        pad = size - len(make(0, knob))
        if pad < 0:
            continue
        got = len(make(pad, knob))
        # Each unit of pad adds at least a byte, so this step lands at or below ``size``;
        # then climb back to the largest pad that still fits.
        pad = max(0, pad - (got - size))
        while len(make(pad + 1, knob)) <= size:
            pad += 1
        if len(make(pad, knob)) == size:
            return make(pad, knob)
    return None
