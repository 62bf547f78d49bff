"""Which packets carry metadata, in one compiled pass (numba).

A packet's kind says which parser of :mod:`.meta` reads its payload: DNS over UDP on
Zeek's DNS ports, DNS over TCP on port 53, an HTTP request head (a method at the start
of the payload), an HTTP status line, or a TLS record that holds or may precede a
hello (a handshake record with a ClientHello or ServerHello, or an alert or
change_cipher_spec record). Everything else is 0 (:data:`NONE`).
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet import http
from vigile.jit import njit

NONE, DNS_UDP, DNS_TCP, HTTP_REQUEST, HTTP_STATUS, TLS_HELLO = range(6)
DNS_PORTS = np.array([53, 5353, 5355], np.int64)
HTTP_PREFIXES = np.array([int.from_bytes(p.ljust(4), "big") for p in http.PREFIXES], np.int64)
STATUS_PREFIX = int.from_bytes(b"HTTP", "big")


@njit(cache=True, nogil=True)
def _member(value: int, values: np.ndarray) -> bool:
    for x in values:  # noqa: SIM110 (numba compiles this loop, not any() over a generator)
        if x == value:
            return True
    return False


@njit(cache=True, nogil=True)
def _tcp_kind(v: np.ndarray, sport: int, dport: int, p: int, cap: int) -> int:
    if cap >= 14 and (sport == 53 or dport == 53):
        return DNS_TCP
    if cap < 4:
        return NONE
    first4 = int(v[p]) << 24 | int(v[p + 1]) << 16 | int(v[p + 2]) << 8 | int(v[p + 3])
    if cap >= 14 and _member(first4, HTTP_PREFIXES):
        return HTTP_REQUEST
    if first4 == STATUS_PREFIX:
        return HTTP_STATUS
    if cap < 6 or v[p + 1] != 3:
        return NONE
    ctype = v[p]
    if (ctype == 22 and (v[p + 5] == 1 or v[p + 5] == 2)) or ctype == 20 or ctype == 21:
        return TLS_HELLO
    return NONE


@njit(
    cache=True,
    nogil=True,
    aot=["(uint8[::1], boolean[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1])"],
)
def classify(
    v: np.ndarray,
    ok: np.ndarray,
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    payload_off: np.ndarray,
    payload_cap: np.ndarray,
) -> np.ndarray:
    """The kind of each packet (one of :data:`NONE` … :data:`TLS_HELLO`)."""
    kind = np.zeros(len(ok), np.int64)
    for i in range(len(ok)):
        if not ok[i]:
            continue
        cap = payload_cap[i]
        if proto[i] == 17:
            on_dns = _member(sport[i], DNS_PORTS) or _member(dport[i], DNS_PORTS)
            kind[i] = DNS_UDP if on_dns and cap >= 12 else NONE
        elif proto[i] == 6:
            kind[i] = _tcp_kind(v, sport[i], dport[i], payload_off[i], cap)
    return kind
