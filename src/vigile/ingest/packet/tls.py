"""TLS ClientHello/ServerHello (RFC 8446 §4.1) with JA3, JA3S and JA4 fingerprints.

JA3/JA3S follow https://github.com/salesforce/ja3 (GREASE values dropped, as
Wireshark's ``tls.handshake.ja3`` does); JA4 follows the FoxIO specification
https://github.com/FoxIO-LLC/ja4/blob/main/technical_details/JA4.md. Hand-written:
the hello layout is short and fixed, and no maintained library parses a hello that
is split over TCP segments without a full TLS stack.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache

from vigile.ingest.packet.tls_names import CIPHERS

VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv10", 0x0302: "TLSv11", 0x0303: "TLSv12", 0x0304: "TLSv13"}
JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2"}
MAX_HELLO = 1 << 16


class TlsError(ValueError):
    """The bytes are not a TLS hello."""


def is_grease(value: int) -> bool:
    """GREASE values (RFC 8701) are ignored by every fingerprint.

    >>> is_grease(0x2A2A), is_grease(0x1301)
    (True, False)
    """
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


@dataclass
class Hello:
    """A ClientHello (``client``) or ServerHello with the fields fingerprints use."""

    client: bool
    version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    versions: tuple[int, ...] = ()
    alpn: tuple[bytes, ...] = ()
    sni: str | None = None

    @property
    def best_version(self) -> int:
        """The supported_versions choice (highest offered), else the legacy version."""
        real = [v for v in self.versions if not is_grease(v)]
        return max(real) if real else self.version

    @property
    def version_name(self) -> str:
        v = self.best_version
        return VERSIONS.get(v, f"0x{v:04x}")

    @property
    def cipher_name(self) -> str | None:
        if self.client or not self.ciphers:
            return None
        return CIPHERS.get(self.ciphers[0], f"0x{self.ciphers[0]:04x}")

    def ja3(self) -> str:
        """JA3 (client) or JA3S (server) as an MD5 hex digest."""
        if self.client:
            return _ja3(
                self.version, self.ciphers, self.extensions, self.groups, self.point_formats
            )
        return _ja3(self.version, self.ciphers, self.extensions)

    def ja4(self, transport: str = "t") -> str:
        """JA4 of a ClientHello (``transport``: t = TCP, q = QUIC, d = DTLS)."""
        alpn = self.alpn[0] if self.alpn else b""
        sni = self.sni is not None
        return _ja4(
            transport, self.best_version, sni, self.ciphers, self.extensions, self.sig_algs, alpn
        )


# A network's clients send few distinct hellos (one per TLS library and settings), so
# the fingerprints are cached on the fields they are made of.
@lru_cache(maxsize=4096)
def _ja3(version: int, *lists: tuple[int, ...]) -> str:
    parts = [str(version), *("-".join(str(v) for v in vs if not is_grease(v)) for vs in lists)]
    return hashlib.md5(",".join(parts).encode(), usedforsecurity=False).hexdigest()


@lru_cache(maxsize=4096)
def _ja4(
    transport: str,
    version: int,
    sni: bool,
    all_ciphers: tuple[int, ...],
    all_exts: tuple[int, ...],
    sig_algs: tuple[int, ...],
    alpn: bytes,
) -> str:
    ciphers = [c for c in all_ciphers if not is_grease(c)]
    exts = [e for e in all_exts if not is_grease(e)]
    if not alpn:
        alpn_code = "00"
    elif chr(alpn[0]).isalnum() and chr(alpn[-1]).isalnum() and alpn.isascii():
        alpn_code = chr(alpn[0]) + chr(alpn[-1])
    else:
        alpn_code = alpn.hex()[0] + alpn.hex()[-1]
    a = (
        f"{transport}{JA4_VERSIONS.get(version, '00')}{'d' if sni else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{alpn_code}"
    )
    b = _sha12(",".join(f"{c:04x}" for c in sorted(ciphers))) if ciphers else "0" * 12
    ext_text = ",".join(f"{e:04x}" for e in sorted(exts) if e not in (0x0000, 0x0010))
    if sig_algs:
        ext_text += "_" + ",".join(f"{s:04x}" for s in sig_algs)
    c = _sha12(ext_text) if exts else "0" * 12
    return f"{a}_{b}_{c}"


#: What a ``tls`` row takes from a hello besides its SNI: ClientHello?, version name,
#: cipher name, JA3 (JA3S for a server), JA4 (None for a server).
Fields = tuple[bool, str, str | None, str, str | None]


def fields(hello: Hello) -> Fields:
    """The :data:`Fields` of ``hello``."""
    ja4 = hello.ja4("t") if hello.client else None
    return hello.client, hello.version_name, hello.cipher_name, hello.ja3(), ja4


class FieldCache:
    """:data:`Fields` of hellos by the key :mod:`.headkernel` writes for them.

    Hellos with the same key have the same fields, so a hello is parsed in Python
    only the first time its key is seen. The cache is emptied when it reaches
    ``limit`` keys, which bounds its memory.
    """

    def __init__(self, limit: int = 65_536) -> None:
        self.limit = limit
        self._known: dict[bytes, Fields | None] = {}

    def get(self, key: bytes, msg: memoryview) -> Fields | None:
        """The fields of hello message ``msg`` whose key is ``key``; None if malformed."""
        if key in self._known:
            return self._known[key]
        if len(self._known) >= self.limit:
            self._known.clear()
        try:
            value: Fields | None = fields(parse_hello(msg.tobytes()))
        except TlsError:
            value = None
        self._known[key] = value
        return value


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def handshake_message(data: bytes) -> bytes | None:
    """The first handshake message in TLS records ``data``; None until it is complete.

    Raises :class:`TlsError` if ``data`` does not start with a handshake record.
    """
    body, off = b"", 0
    while off + 5 <= len(data):
        ctype, major, length = data[off], data[off + 1], struct.unpack_from("!H", data, off + 3)[0]
        if ctype in (20, 21) and not body and major == 3:
            off += 5 + length  # an alert or change_cipher_spec before the hello
            continue
        if ctype != 22 or major != 3:
            raise TlsError("not a TLS handshake record")
        body += data[off + 5 : off + 5 + length]
        off += 5 + length
        if len(body) >= 4:
            need = 4 + int.from_bytes(body[1:4], "big")
            if need > MAX_HELLO:
                raise TlsError("handshake message too long")
            if len(body) >= need:
                return body[:need]
    if len(data) >= 1 and data[0] not in (20, 21, 22):
        raise TlsError("not a TLS handshake record")
    return None


def parse_hello(msg: bytes) -> Hello:
    """Parse a ClientHello or ServerHello handshake message (type byte included)."""
    try:
        return _parse(msg)
    except (struct.error, IndexError) as e:
        raise TlsError(f"malformed hello: {e}") from None


def _parse(msg: bytes) -> Hello:
    kind = msg[0]
    if kind not in (1, 2):
        raise TlsError("not a hello")
    client = kind == 1
    version = struct.unpack_from("!H", msg, 4)[0]
    off = 4 + 2 + 32
    # An encrypted handshake record can start with 1 or 2 by chance: check the layout.
    if msg[4] != 3 or msg[off] > 32:
        raise TlsError("not a hello")
    off += 1 + msg[off]  # session id
    if client:
        (n,) = struct.unpack_from("!H", msg, off)
        ciphers = struct.unpack_from(f"!{n // 2}H", msg, off + 2)
        off += 2 + n
        off += 1 + msg[off]  # compression methods
    else:
        ciphers = struct.unpack_from("!H", msg, off)
        off += 3
    hello = Hello(client, version, ciphers)
    if off + 2 <= len(msg):
        (total,) = struct.unpack_from("!H", msg, off)
        _extensions(msg[off + 2 : off + 2 + total], hello)
    return hello


#: Extensions whose content a fingerprint or a column uses; the others count by type only.
READ_EXTENSIONS = frozenset((0, 10, 11, 13, 16, 43))


def _extensions(data: bytes, h: Hello) -> None:
    off, extensions = 0, []
    while off + 4 <= len(data):
        etype, n = struct.unpack_from("!HH", data, off)
        extensions.append(etype)
        if etype not in READ_EXTENSIONS:
            off += 4 + n
            continue
        body = data[off + 4 : off + 4 + n]
        if etype == 0 and h.client and len(body) >= 5:
            name_len = struct.unpack_from("!H", body, 3)[0]
            h.sni = body[5 : 5 + name_len].decode("utf-8", "backslashreplace")
        elif etype == 10 and len(body) >= 2:
            h.groups = _u16s(body[2 : 2 + struct.unpack_from("!H", body)[0]])
        elif etype == 11 and body:
            h.point_formats = tuple(body[1 : 1 + body[0]])
        elif etype == 13 and len(body) >= 2:
            h.sig_algs = _u16s(body[2 : 2 + struct.unpack_from("!H", body)[0]])
        elif etype == 43:
            h.versions = _u16s(body[1:]) if h.client else _u16s(body[:2])
        elif etype == 16 and len(body) >= 3:
            h.alpn = _alpn(body[2:])
        off += 4 + n
    h.extensions = tuple(extensions)


def _u16s(data: bytes) -> tuple[int, ...]:
    return struct.unpack_from(f"!{len(data) // 2}H", data)


def _alpn(data: bytes) -> tuple[bytes, ...]:
    out, i = [], 0
    while i < len(data):
        out.append(data[i + 1 : i + 1 + data[i]])
        i += 1 + data[i]
    return tuple(out)
