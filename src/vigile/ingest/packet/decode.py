"""Vectorised decoding of link, IP, tunnel and transport headers.

Every function works on whole arrays of packets: one NumPy gather per header field
instead of one Python call per packet. Addresses are kept as two unsigned 64-bit
halves of the IPv6 address (IPv4 as ``::ffff:a.b.c.d``) so both families share one
flow key.

Covered: Ethernet with 802.1Q/802.1ad/QinQ tags, PPPoE and MPLS; Linux cooked
capture v1 and v2; raw IPv4/IPv6; BSD loopback/null (both byte orders). IPv4 and
IPv6 with hop-by-hop, routing, destination-options, AH and fragment headers.
Tunnels are taken apart and the innermost packet defines the flow, as Zeek does:
IP-in-IP (4in4, 4in6, 6in4, 6in6), GRE (versions 0 and 1/PPTP, carrying IP, PPP or
Ethernet) and Teredo (UDP port 3544 carrying IPv6).

IPv4/IPv6 fragments are not reassembled: the first fragment carries the ports, and
later fragments are attributed to the same flow through (source, destination,
protocol, IP id) by :class:`FragmentTable`, each counted as the packet it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigile.ingest.packet.fastpath import decode_common
from vigile.ingest.packet.fragments import FragmentTable
from vigile.ingest.packet.link import addr4, addr16, ethertype_chain, link_layer, u8, u16, u32
from vigile.ingest.packet.pcapfile import Packets

IPV6_EXTENSIONS = (0, 43, 60, 135, 139, 140)
TEREDO_PORT = 3544
TUNNEL_ROUNDS = 4


@dataclass
class Decoded:
    """Per-packet header fields; ``ok`` marks packets with a usable IP header."""

    ok: np.ndarray
    src: np.ndarray  # (n, 2) uint64 halves
    dst: np.ndarray
    proto: np.ndarray
    sport: np.ndarray  # port, or ICMP type
    dport: np.ndarray  # port, or ICMP code
    flags: np.ndarray  # TCP flags
    seq: np.ndarray  # TCP sequence number
    ip_bytes: np.ndarray  # bytes of the innermost IP packet (header included)
    payload_off: np.ndarray  # offset of the transport payload in the buffer
    payload_cap: np.ndarray  # payload bytes present in the capture
    payload_wire: np.ndarray  # payload bytes according to the headers
    fragment: np.ndarray  # True for IP fragments (first or later)


DECODED_FIELDS = tuple(Decoded.__dataclass_fields__)


def decode(pk: Packets, fragments: FragmentTable) -> Decoded:
    """Decode every packet of a chunk down to its innermost transport header.

    The common packets are decoded in compiled code (:mod:`.fastpath`), the others
    by :func:`decode_vectorised`.
    """
    slow, fields, fragment, ip_id, first = decode_common(
        pk.buf, pk.data_off, pk.caplen, pk.linktype
    )
    d = Decoded(**dict(zip(DECODED_FIELDS, [*fields, fragment], strict=True)))
    if slow.any():
        other, other_id, other_first = _decode_numpy(pk.select(slow))
        for name in DECODED_FIELDS:
            getattr(d, name)[slow] = getattr(other, name)
        ip_id[slow], first[slow] = other_id, other_first
    fragments.attribute(d, ip_id, first)
    return d


def decode_vectorised(pk: Packets, fragments: FragmentTable) -> Decoded:
    """Decode every packet of a chunk with NumPy, whatever its layers."""
    d, ip_id, first = _decode_numpy(pk)
    fragments.attribute(d, ip_id, first)
    return d


def _decode_numpy(pk: Packets) -> tuple[Decoded, np.ndarray, np.ndarray]:
    """The fields, IP ids and first-fragment flags (fragments not yet attributed)."""
    v, n = pk.buf, len(pk)
    end = pk.data_off + pk.caplen
    l3, ver = link_layer(pk)
    f = _IpFields(n)
    todo = np.flatnonzero((ver == 4) | (ver == 6))
    for depth in range(TUNNEL_ROUNDS):
        if not len(todo):
            break
        ok = f.parse(v, todo, l3[todo], ver[todo], end[todo], keep_invalid=depth == 0)
        todo = todo[ok]
        inner_l3, inner_ver = _tunnels(v, todo, f)
        tunnel = inner_ver > 0
        todo = todo[tunnel]
        l3[todo], ver[todo] = inner_l3[tunnel], inner_ver[tunnel]
    return _transport(v, f, end), f.ip_id, f.frag_off == 0


class _IpFields:
    """The innermost IP header's fields, filled round by round (tunnels)."""

    def __init__(self, n: int) -> None:
        self.ok = np.zeros(n, bool)
        self.src = np.zeros((n, 2), np.uint64)
        self.dst = np.zeros((n, 2), np.uint64)
        self.proto = np.full(n, -1, np.int64)
        self.l4 = np.zeros(n, np.int64)
        self.ip_end = np.zeros(n, np.int64)
        self.ip_bytes = np.zeros(n, np.int64)
        self.ip_id = np.zeros(n, np.int64)
        self.frag_off = np.zeros(n, np.int64)
        self.fragment = np.zeros(n, bool)

    def parse(
        self,
        v: np.ndarray,
        idx: np.ndarray,
        l3: np.ndarray,
        ver: np.ndarray,
        end: np.ndarray,
        keep_invalid: bool,
    ) -> np.ndarray:
        """Parse IPv4/IPv6 headers at ``l3`` for packets ``idx``; True where valid."""
        is4 = ver == 4
        b0 = u8(v, l3)
        ihl = (b0 & 0x0F) * 4
        total = u16(v, l3 + 2)
        plen = u16(v, l3 + 4)
        valid = np.where(
            is4,
            (b0 >> 4 == 4) & (ihl >= 20) & (l3 + ihl <= end),
            (b0 >> 4 == 6) & (l3 + 40 <= end),
        )
        # IPv4 total length 0 happens with TCP segmentation offload: use the capture.
        ip_bytes = np.where(is4, np.where(total >= ihl, total, end - l3), plen + 40)
        proto = np.where(is4, u8(v, l3 + 9), u8(v, l3 + 6))
        l4 = np.where(is4, l3 + ihl, l3 + 40)
        flagfrag = u16(v, l3 + 6)
        frag_off = np.where(is4, (flagfrag & 0x1FFF) * 8, 0)
        fragment = is4 & ((flagfrag & 0x3FFF) != 0)
        ip_id = np.where(is4, u16(v, l3 + 4), 0)
        src = np.where(is4[:, None], addr4(v, l3 + 12), addr16(v, l3 + 8))
        dst = np.where(is4[:, None], addr4(v, l3 + 16), addr16(v, l3 + 24))
        ext = np.flatnonzero(~is4)
        for _ in range(8):  # IPv6 extension headers, in chain order
            ext = ext[np.isin(proto[ext], (*IPV6_EXTENSIONS, 44, 51))]
            if not len(ext):
                break
            p, nh = l4[ext], proto[ext]
            hlen = np.where(nh == 44, 8, np.where(nh == 51, (u8(v, p + 1) + 2) * 4, 0))
            hlen = np.where(hlen == 0, (u8(v, p + 1) + 1) * 8, hlen)
            frag = nh == 44
            fo = u16(v, p + 2)
            frag_off[ext[frag]] = fo[frag] & 0xFFF8
            fragment[ext[frag]] = (fo[frag] & 0xFFF9) != 0
            ip_id[ext[frag]] = u32(v, p[frag] + 4)
            proto[ext], l4[ext] = u8(v, p), p + hlen
        valid &= l4 <= end
        keep = valid | keep_invalid
        t = idx[keep]
        self.ok[t] = valid[keep]
        self.src[t], self.dst[t], self.proto[t], self.l4[t] = (
            src[keep],
            dst[keep],
            proto[keep],
            l4[keep],
        )
        self.ip_bytes[t], self.ip_end[t] = ip_bytes[keep], (l3 + ip_bytes)[keep]
        self.ip_id[t], self.frag_off[t], self.fragment[t] = (
            ip_id[keep],
            frag_off[keep],
            fragment[keep],
        )
        return valid


def _tunnels(v: np.ndarray, idx: np.ndarray, f: _IpFields) -> tuple[np.ndarray, np.ndarray]:
    """Inner header offset and IP version for tunnel packets among ``idx`` (0: none)."""
    proto, l4 = f.proto[idx], f.l4[idx]
    whole = f.frag_off[idx] == 0
    inner_l3 = l4.copy()
    ver = np.where(whole & (proto == 4), 4, np.where(whole & (proto == 41), 6, 0))
    gre = np.flatnonzero(whole & (proto == 47))
    inner_l3[gre], ver[gre] = _gre(v, l4[gre])
    udp = np.flatnonzero(whole & (proto == 17))
    teredo = udp[(u16(v, l4[udp]) == TEREDO_PORT) | (u16(v, l4[udp] + 2) == TEREDO_PORT)]
    inner_l3[teredo], ver[teredo] = _teredo(v, l4[teredo] + 8)
    return inner_l3, ver


def _gre(v: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GRE (RFC 2784/2890) and enhanced GRE of PPTP (RFC 2637)."""
    flags, etype = u16(v, p), u16(v, p + 2)
    hlen = 4 + 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1))
    hlen += np.where(flags & 7 == 1, 4 * (flags >> 7 & 1), 0)  # PPTP acknowledgment number
    inner = p + hlen
    ppp = etype == 0x880B
    inner += np.where(ppp & (u16(v, inner) == 0xFF03), 2, 0)
    short = ppp & ((u8(v, inner) & 1) == 1)  # PPP protocol field compressed to one byte
    pproto = np.where(short, u8(v, inner), u16(v, inner))
    etype = np.where(
        ppp, np.where(pproto == 0x21, 0x0800, np.where(pproto == 0x57, 0x86DD, 0)), etype
    )
    inner += np.where(ppp, np.where(short, 1, 2), 0)
    teb = etype == 0x6558  # transparent Ethernet bridging
    etype[teb], inner[teb] = u16(v, inner[teb] + 12), inner[teb] + 14
    etype, inner = ethertype_chain(v, etype, inner)
    return inner, np.where(etype == 0x0800, 4, np.where(etype == 0x86DD, 6, 0))


def _teredo(v: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Teredo (RFC 4380): optional authentication and origin indications, then IPv6."""
    auth = u16(v, p) == 1
    p = p + np.where(auth, 13 + u8(v, p + 2) + u8(v, p + 3), 0)
    p = p + np.where(u16(v, p) == 0, 8, 0)
    return p, np.where(u8(v, p) >> 4 == 6, 6, 0)


def _transport(v: np.ndarray, f: _IpFields, end: np.ndarray) -> Decoded:
    n = len(f.ok)
    proto, l4 = f.proto, f.l4
    whole = f.frag_off == 0
    sport, dport = np.zeros(n, np.int64), np.zeros(n, np.int64)
    flags, seq = np.zeros(n, np.int64), np.zeros(n, np.int64)
    payload_off = l4.copy()
    ported = whole & np.isin(proto, (6, 17, 132))
    sport[ported], dport[ported] = u16(v, l4[ported]), u16(v, l4[ported] + 2)
    icmp = whole & np.isin(proto, (1, 58))
    sport[icmp], dport[icmp] = u8(v, l4[icmp]), u8(v, l4[icmp] + 1)
    tcp = whole & (proto == 6)
    seq[tcp], flags[tcp] = u32(v, l4[tcp] + 4), u8(v, l4[tcp] + 13)
    payload_off[tcp] = l4[tcp] + (u8(v, l4[tcp] + 12) >> 4) * 4
    udp = whole & (proto == 17)
    payload_off[udp] = l4[udp] + 8
    payload_wire = np.maximum(f.ip_end - payload_off, 0)
    # A UDP header's length covers the whole datagram, later fragments included.
    payload_wire[udp] = np.maximum(u16(v, l4[udp] + 4) - 8, 0)
    payload_wire[~whole] = 0
    payload_cap = np.clip(np.minimum(f.ip_end, end) - payload_off, 0, None)
    payload_cap[~whole] = 0
    ok = f.ok & ((~tcp) | (l4 + 20 <= end)) & ((~udp) | (l4 + 8 <= end))
    return Decoded(
        ok,
        f.src,
        f.dst,
        proto,
        sport,
        dport,
        flags,
        seq,
        f.ip_bytes,
        payload_off,
        payload_cap,
        payload_wire,
        f.fragment,
    )
