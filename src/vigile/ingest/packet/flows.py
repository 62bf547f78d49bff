"""Bidirectional flow assembly with Zeek's semantics, chunk by chunk.

Every packet becomes a *partial flow* (a one-packet summary: counts per direction,
first/last time, TCP flags, the first time each history letter was seen). Partials
are merged with NumPy: sort by flow key, split where the key changes or where the
gap between two partials exceeds the protocol's inactivity timeout, and reduce each
run with ``ufunc.reduceat``. The merge is associative, so the flows still active at
the end of a chunk are kept as partials and merged with the next chunk's packets;
flows idle longer than their timeout are handed out. Memory is bounded by the
number of active flows, not by the file.

Directions are canonical inside a partial (side ``a`` is the smaller endpoint);
who is the originator is decided when a flow is handed out (:mod:`.connstate`).

Deliberate differences from Zeek, also listed in docs/pcap.md: a connection is split
only by inactivity (not by a new SYN after a close); TCP payload bytes are the span
of sequence numbers carrying data, per direction, as Zeek computes them, but without
Zeek's handling of more than 4 GiB in one direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigile.ingest.packet.decode import Decoded
from vigile.ingest.packet.pcapfile import Packets

BIG = np.iinfo(np.int64).max
#: History letters tracked per direction, in Zeek's order of meaning.
LETTERS = "SHADFR"
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


@dataclass(frozen=True)
class Timeouts:
    """Inactivity timeouts in seconds (Zeek's defaults)."""

    tcp: float = 300.0
    udp: float = 60.0
    other: float = 60.0

    def of(self, proto: np.ndarray) -> np.ndarray:
        s = np.where(proto == 6, self.tcp, np.where(proto == 17, self.udp, self.other))
        return (s * 1e9).astype(np.int64)


# Columns of a partial flow. Arrays of shape (n,), (n, 2) per direction, or (n, 2, 6).
KEY = ("h", "a", "b", "pa", "pb", "proto")
FIRST = ("first_ts", "first_pos", "first_dir", "first_flags", "first_sport", "first_dport")
SUMS = ("pkts", "ipb", "pay")
Parts = dict[str, np.ndarray]


def packet_parts(pk: Packets, d: Decoded) -> Parts:
    """One partial flow per decoded packet (``d.ok`` only)."""
    ok = np.flatnonzero(d.ok)
    src, dst, proto = d.src[ok], d.dst[ok], d.proto[ok]
    icmp = np.isin(proto, (1, 58))
    sp = np.where(icmp, 0, d.sport[ok])
    dp = np.where(icmp, 0, d.dport[ok])
    swap = (src[:, 0] > dst[:, 0]) | (
        (src[:, 0] == dst[:, 0])
        & ((src[:, 1] > dst[:, 1]) | ((src[:, 1] == dst[:, 1]) & (sp > dp)))
    )
    a = np.where(swap[:, None], dst, src)
    b = np.where(swap[:, None], src, dst)
    pa, pb = np.where(swap, dp, sp), np.where(swap, sp, dp)
    n, side, rows = len(ok), swap.astype(np.int64), np.arange(len(ok))
    ts, pos = pk.ts_ns[ok], pk.pos[ok]
    flags, pay = d.flags[ok], d.payload_wire[ok]

    def per_side(values: np.ndarray, fill: int = 0) -> np.ndarray:
        out = np.full((n, 2), fill, np.int64)
        out[rows, side] = values
        return out

    tcp = proto == 6
    data = tcp & (pay > 0)
    syn, ack = (flags & SYN) != 0, (flags & ACK) != 0
    letters = np.stack(
        [
            tcp & syn & ~ack,
            tcp & syn & ack,
            tcp & ack & ~syn & ((flags & (FIN | RST)) == 0) & (pay == 0),
            pay > 0,
            tcp & ((flags & FIN) != 0),
            tcp & ((flags & RST) != 0),
        ],
        axis=1,
    )
    hist = np.full((n, 2, len(LETTERS)), BIG, np.int64)
    hist[rows, side] = np.where(letters, pos[:, None], BIG)
    return {
        "h": _hash(a, b, pa, pb, proto),
        "a": a,
        "b": b,
        "pa": pa,
        "pb": pb,
        "proto": proto,
        "first_ts": ts,
        "last_ts": ts,
        "first_pos": pos,
        "first_dir": side,
        "first_flags": flags,
        "first_sport": d.sport[ok],
        "first_dport": d.dport[ok],
        "pkts": per_side(np.ones(n, np.int64)),
        "ipb": per_side(d.ip_bytes[ok]),
        "pay": per_side(pay),
        "flg": per_side(flags),
        "sbase": per_side(np.where(data, d.seq[ok], -1), -1),
        "slo": per_side(np.where(data, 0, BIG), BIG),
        "shi": per_side(np.where(data, pay, -1), -1),
        "hist": hist,
    }


def _hash(
    a: np.ndarray, b: np.ndarray, pa: np.ndarray, pb: np.ndarray, p: np.ndarray
) -> np.ndarray:
    """64-bit mix of the flow key (splitmix64 finaliser); equal keys, equal hashes."""
    h = np.zeros(len(p), np.uint64)
    for col in (a[:, 0], a[:, 1], b[:, 0], b[:, 1], (pa << 24 | pb << 8 | p).astype(np.uint64)):
        h = (h ^ col.astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(31)
    return h


def merge(parts: Parts, timeouts: Timeouts) -> tuple[Parts, np.ndarray]:
    """Merge partials of the same flow; also return each input's merged index."""
    order = np.argsort(parts["h"], kind="stable")
    s = {k: v[order] for k, v in parts.items()}
    n = len(order)
    new = np.ones(n, bool)
    if n > 1:
        same = s["h"][1:] == s["h"][:-1]
        for k in ("a", "b"):
            same &= (s[k][1:] == s[k][:-1]).all(axis=1)
        for k in ("pa", "pb", "proto"):
            same &= s[k][1:] == s[k][:-1]
        gap = s["first_ts"][1:] - s["last_ts"][:-1]
        new[1:] = ~same | (gap > timeouts.of(s["proto"][1:]))
    starts = np.flatnonzero(new)
    seg = np.cumsum(new) - 1
    out = {k: s[k][starts] for k in (*KEY, *FIRST)}
    out["last_ts"] = np.maximum.reduceat(s["last_ts"], starts)
    for k in SUMS:
        out[k] = np.add.reduceat(s[k], starts, axis=0)
    out["flg"] = np.bitwise_or.reduceat(s["flg"], starts, axis=0)
    out["hist"] = np.minimum.reduceat(s["hist"], starts, axis=0)
    _merge_seq(s, out, starts, seg)
    where = np.empty(n, np.int64)
    where[order] = seg
    return out, where


def _merge_seq(s: Parts, out: Parts, starts: np.ndarray, seg: np.ndarray) -> None:
    """Sequence spans relative to the first data packet of each flow and direction."""
    valid = s["sbase"] >= 0
    idx = np.where(valid, np.arange(len(seg))[:, None], BIG)
    first = np.minimum.reduceat(idx, starts, axis=0)
    has = first < BIG
    base = np.where(has, np.take_along_axis(s["sbase"], np.where(has, first, 0), 0), -1)
    # Serial number arithmetic (RFC 1982): distance from the base as a signed 32-bit number.
    shift = (s["sbase"] - base[seg] + (1 << 31)) % (1 << 32) - (1 << 31)
    out["sbase"] = base
    out["slo"] = np.minimum.reduceat(np.where(valid, s["slo"] + shift, BIG), starts, axis=0)
    out["shi"] = np.maximum.reduceat(np.where(valid, s["shi"] + shift, -1), starts, axis=0)


def concat(a: Parts | None, b: Parts) -> Parts:
    return b if a is None else {k: np.concatenate([a[k], b[k]]) for k in b}


def take(p: Parts, sel: np.ndarray) -> Parts:
    return {k: v[sel] for k, v in p.items()}


class FlowTable:
    """Active flows between chunks; hands out the flows that timed out."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.active: Parts | None = None
        self.now = np.iinfo(np.int64).min

    def add(self, pk: Packets, d: Decoded) -> tuple[Parts, np.ndarray]:
        """Add a chunk; return the finished flows and each ok packet's flow first_pos."""
        parts = packet_parts(pk, d)
        if len(parts["h"]):
            self.now = max(self.now, int(parts["last_ts"].max()))
        held = 0 if self.active is None else len(self.active["h"])
        merged, where = merge(concat(self.active, parts), self.timeouts)
        flow_pos = merged["first_pos"][where[held:]]
        idle = merged["last_ts"] < self.now - self.timeouts.of(merged["proto"])
        self.active = take(merged, ~idle)
        return take(merged, idle), flow_pos

    def finish(self) -> Parts | None:
        """Every flow still held, at the end of the capture."""
        out, self.active = self.active, None
        return out
