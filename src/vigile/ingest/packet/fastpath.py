"""The common packet, decoded in compiled code (numba): Ethernet, IPv4/IPv6, TCP/UDP.

Almost every packet of a capture is Ethernet (with or without 802.1Q/QinQ tags)
carrying IPv4 (fragmented or not) or IPv6 without extension headers or tunnels.
:func:`decode_common` decodes those one packet after the other in a compiled loop,
reading exactly the bytes
the NumPy decoder of :mod:`.decode` reads (same clipping at the end of the buffer),
decodes an Ethernet frame that carries no IP (ARP, …) as the NumPy decoder would (no
field set), and marks every other packet as ``slow``; :func:`.decode.decode` hands those
to the NumPy decoder, which stays the reference for everything unusual
(``tests/test_pcap_decode.py`` holds both to the same fields).
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet.link import ETH, V4_PREFIX
from vigile.jit import njit

TEREDO_PORT = 3544
#: IP protocols that mean an IPv6 extension header or a tunnel: left to the NumPy decoder.
UNUSUAL = np.array([0, 43, 60, 135, 139, 140, 44, 51, 4, 41, 47], np.int64)


@njit(cache=True, nogil=True)
def _u8(v: np.ndarray, p: int) -> int:
    return int(v[min(max(p, 0), len(v) - 1)])  # as ndarray.take(mode="clip")


@njit(cache=True, nogil=True)
def _u16(v: np.ndarray, p: int) -> int:
    return _u8(v, p) << 8 | _u8(v, p + 1)


@njit(cache=True, nogil=True)
def _u32(v: np.ndarray, p: int) -> int:
    return _u16(v, p) << 16 | _u16(v, p + 2)


@njit(cache=True, nogil=True)
def _u64(v: np.ndarray, p: int) -> np.uint64:
    return np.uint64(_u32(v, p)) << np.uint64(32) | np.uint64(_u32(v, p + 4))


@njit(cache=True, nogil=True)
def _unusual(p: int) -> bool:
    for q in UNUSUAL:  # noqa: SIM110 (numba compiles this loop, not any() over a generator)
        if p == q:
            return True
    return False


@njit(cache=True, nogil=True)
def _may_carry_ip(etype: int) -> bool:
    """IPv4, IPv6, PPPoE sessions and MPLS: the EtherTypes the NumPy decoder reads on."""
    return etype == 0x0800 or etype == 0x86DD or etype == 0x8864 or 0x8847 <= etype <= 0x8848


@njit(cache=True, nogil=True)
def _network(v: np.ndarray, d: int, end: int) -> tuple[int, int]:
    """Offset and IP version of an Ethernet frame's network header; version 0: slow;
    -1: no IP in it (an EtherType that :func:`.link.ethertype_chain` does not follow
    to IP either, such as ARP)."""
    etype, l3 = _u16(v, d + 12), d + 14
    for _ in range(3):
        if etype != 0x8100 and etype != 0x88A8 and etype != 0x9100:
            break
        etype, l3 = _u16(v, l3 + 2), l3 + 4
    if not _may_carry_ip(etype):
        return l3, -1
    b0 = _u8(v, l3)
    if etype == 0x0800 and b0 >> 4 == 4 and (b0 & 0x0F) >= 5 and l3 + (b0 & 0x0F) * 4 <= end:
        return l3, 4
    if etype == 0x86DD and b0 >> 4 == 6 and l3 + 40 <= end:
        return l3, 6
    return l3, 0


@njit(cache=True, nogil=True, aot=["(uint8[::1], int64[::1], int64[::1], int64[::1])"])
def decode_common(
    v: np.ndarray, data_off: np.ndarray, caplen: np.ndarray, linktype: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Fields of :class:`.decode.Decoded`, a ``slow`` mask, and the IP id and
    first-fragment flag of fragments (for :class:`.fragments.FragmentTable`)."""
    n = len(data_off)
    slow, ok = np.ones(n, np.bool_), np.zeros(n, np.bool_)
    fragment, ip_id, first = np.zeros(n, np.bool_), np.zeros(n, np.int64), np.ones(n, np.bool_)
    src, dst = np.zeros((n, 2), np.uint64), np.zeros((n, 2), np.uint64)
    proto, sport, dport = np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    flags, seq, ip_bytes = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    p_off, p_cap, p_wire = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        d, end = data_off[i], data_off[i] + caplen[i]
        if linktype[i] != ETH:
            continue
        l3, ver = _network(v, d, end)
        if ver < 0:  # decoded: no IP (the fields stay as the NumPy decoder leaves them)
            slow[i] = False
            continue
        if ver == 0:
            continue
        if ver == 4:
            ihl = (_u8(v, l3) & 0x0F) * 4
            total = _u16(v, l3 + 2)
            size = total if total >= ihl else end - l3
            frag = _u16(v, l3 + 6) & 0x3FFF
            if frag:  # more fragments follow, or a later one (offset not 0)
                fragment[i], ip_id[i], first[i] = True, _u16(v, l3 + 4), frag & 0x1FFF == 0
            p, l4 = _u8(v, l3 + 9), l3 + ihl
            src[i, 1] = V4_PREFIX | np.uint64(_u32(v, l3 + 12))
            dst[i, 1] = V4_PREFIX | np.uint64(_u32(v, l3 + 16))
        else:
            size, p, l4 = _u16(v, l3 + 4) + 40, _u8(v, l3 + 6), l3 + 40
            src[i, 0], src[i, 1] = _u64(v, l3 + 8), _u64(v, l3 + 16)
            dst[i, 0], dst[i, 1] = _u64(v, l3 + 24), _u64(v, l3 + 32)
        if _unusual(p):
            continue
        if not first[i]:  # no transport header: the ports come from the first fragment
            ok[i], slow[i], proto[i], ip_bytes[i], p_off[i] = True, False, p, size, l4
            continue
        off = l4
        if p == 6 or p == 17 or p == 132:
            sport[i], dport[i] = _u16(v, l4), _u16(v, l4 + 2)
            if p == 17 and (sport[i] == TEREDO_PORT or dport[i] == TEREDO_PORT):
                continue
        elif p == 1 or p == 58:
            sport[i], dport[i] = _u8(v, l4), _u8(v, l4 + 1)
        ip_end = l3 + size
        if p == 6:
            seq[i], flags[i] = _u32(v, l4 + 4), _u8(v, l4 + 13)
            off = l4 + (_u8(v, l4 + 12) >> 4) * 4
        elif p == 17:
            off = l4 + 8
        p_wire[i] = max(_u16(v, l4 + 4) - 8, 0) if p == 17 else max(ip_end - off, 0)
        p_cap[i] = max(min(ip_end, end) - off, 0)
        ok[i] = (p != 6 or l4 + 20 <= end) and (p != 17 or l4 + 8 <= end)
        slow[i], proto[i], ip_bytes[i], p_off[i] = False, p, size, off
    fields = (ok, src, dst, proto, sport, dport, flags, seq, ip_bytes, p_off, p_cap, p_wire)
    return slow, fields, fragment, ip_id, first
