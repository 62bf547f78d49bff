"""Byte-field gathers and the link layer, for whole arrays of packets.

Link types: Ethernet (with 802.1Q/802.1ad/QinQ tags, PPPoE sessions and MPLS
labels), Linux cooked capture v1 and v2, raw IPv4/IPv6 and BSD loopback/null in
either byte order (https://www.tcpdump.org/linktypes.html).
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet.pcapfile import Packets

V4_PREFIX = np.uint64(0xFFFF_0000_0000)
ETH, NULL, LOOP, SLL, SLL2 = 1, 0, 108, 113, 276
RAW_ALIASES = (12, 14, 101)


def u8(view: np.ndarray, p: np.ndarray) -> np.ndarray:
    return view.take(p, mode="clip").astype(np.int64)


def u16(view: np.ndarray, p: np.ndarray) -> np.ndarray:
    return u8(view, p) << 8 | u8(view, p + 1)


def u32(view: np.ndarray, p: np.ndarray) -> np.ndarray:
    return u16(view, p) << 16 | u16(view, p + 2)


def addr16(view: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The 16 bytes at each of ``p`` as (n, 2) uint64 big-endian halves."""
    raw = view.take(p[:, None] + np.arange(16), mode="clip")
    return raw.view(">u8").astype(np.uint64)


def addr4(view: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.zeros((len(p), 2), np.uint64)
    out[:, 1] = V4_PREFIX | u32(view, p).astype(np.uint64)
    return out


def link_layer(pk: Packets) -> tuple[np.ndarray, np.ndarray]:
    """Offset of the network header and the IP version (4, 6 or 0) of each packet."""
    v, d, lt = pk.buf, pk.data_off, pk.linktype
    l3 = d.copy()
    etype = np.zeros(len(d), np.int64)
    eth = lt == ETH
    etype[eth], l3[eth] = u16(v, d[eth] + 12), d[eth] + 14
    sll = lt == SLL
    etype[sll], l3[sll] = u16(v, d[sll] + 14), d[sll] + 16
    sll2 = lt == SLL2
    etype[sll2], l3[sll2] = u16(v, d[sll2]), d[sll2] + 20
    etype, l3 = ethertype_chain(v, etype, l3)
    ver = np.where(etype == 0x0800, 4, np.where(etype == 0x86DD, 6, 0))
    raw = np.isin(lt, RAW_ALIASES)
    ver[raw] = u8(v, d[raw]) >> 4
    ver[lt == 228], ver[lt == 229] = 4, 6
    for kind in (NULL, LOOP):
        sel = lt == kind
        fam = u32(v, d[sel])
        if kind == NULL:  # the address family is in the writer's byte order: accept both
            little = u8(v, d[sel]) | u8(v, d[sel] + 1) << 8
            fam = np.where(fam > 0xFFFF, little, fam)
        ver[sel] = np.where(fam == 2, 4, np.where(np.isin(fam, (24, 28, 30)), 6, 0))
        l3[sel] = d[sel] + 4
    return l3, ver


def ethertype_chain(v: np.ndarray, etype: np.ndarray, l3: np.ndarray) -> tuple[np.ndarray, ...]:
    """Skip VLAN tags (any depth up to 3), PPPoE session headers and MPLS labels."""
    for _ in range(3):
        tag = np.isin(etype, (0x8100, 0x88A8, 0x9100))
        if not tag.any():
            break
        etype[tag], l3[tag] = u16(v, l3[tag] + 2), l3[tag] + 4
    pppoe = etype == 0x8864
    ppp = u16(v, l3[pppoe] + 6)
    etype[pppoe] = np.where(ppp == 0x21, 0x0800, np.where(ppp == 0x57, 0x86DD, 0))
    l3[pppoe] += 8
    mpls = np.flatnonzero(np.isin(etype, (0x8847, 0x8848)))
    for _ in range(4):
        if not len(mpls):
            break
        bottom = (u8(v, l3[mpls] + 2) & 1) == 1
        l3[mpls] += 4
        done = mpls[bottom]
        nib = u8(v, l3[done]) >> 4
        etype[done] = np.where(nib == 4, 0x0800, np.where(nib == 6, 0x86DD, 0))
        mpls = mpls[~bottom]
    return etype, l3
