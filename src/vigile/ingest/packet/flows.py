"""Bidirectional flow assembly with Zeek's semantics, chunk by chunk.

Every packet is added to its flow (counts per direction, first/last time, TCP flags,
the first time each history letter was seen) in one compiled pass over the chunk
(:mod:`.flowkernel`); a packet that comes longer than the protocol's inactivity
timeout after the previous packet of its flow starts a new flow. The flows still
active at the end of a chunk are carried over to the next one; flows idle longer
than their timeout are handed out. Memory is bounded by the number of active flows,
not by the file.

Directions are canonical inside a partial (side ``a`` is the smaller endpoint);
who is the originator is decided when a flow is handed out (:mod:`.connstate`).

Deliberate differences from Zeek, also listed in docs/pcap.md: a connection is split
only by inactivity (not by a new SYN after a close); TCP payload bytes are the span
of sequence numbers carrying data, per direction, as Zeek computes them, but without
Zeek's handling of more than 4 GiB in one direction.
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.packet import flowkernel as fk
from vigile.ingest.packet.decode import Decoded
from vigile.ingest.packet.magic import Timeouts
from vigile.ingest.packet.pcapfile import Packets

BIG = np.iinfo(np.int64).max
#: History letters tracked per direction, in Zeek's order of meaning.
LETTERS = "SHADFR"
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


#: A group of flows as columns: arrays of shape (n,), (n, 2) per direction, or (n, 2, 6)
#: for the history letters (see :func:`parts`).
Parts = dict[str, np.ndarray]


def parts(keys: np.ndarray, ints: np.ndarray, sides: np.ndarray, h: np.ndarray) -> Parts:
    """Named views of the flow rows of :func:`.flowkernel.assemble`."""
    out = {"h": h, "a": keys[:, :2], "b": keys[:, 2:]}
    out |= {name: ints[:, k] for k, name in enumerate(fk.INTS)}
    out |= {name: sides[:, :, k] for k, name in enumerate(fk.SIDES)}
    out["hist"] = sides[:, :, fk.HIST :]
    return out


class FlowTable:
    """Active flows between chunks; hands out the flows that timed out."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.limits = self.timeouts.of(np.array([6, 17, 0]))
        self.keys = np.zeros((0, 4), np.uint64)
        self.ints = np.zeros((0, len(fk.INTS)), np.int64)
        self.sides = np.zeros((0, 2, fk.HIST + len(LETTERS)), np.int64)
        self.h = np.zeros(0, np.uint64)
        self.now = np.iinfo(np.int64).min

    def add(self, pk: Packets, d: Decoded) -> tuple[Parts, np.ndarray]:
        """Add a chunk; return the finished flows and each ok packet's flow first_pos."""
        ok = np.flatnonzero(d.ok)
        columns = (d.proto, d.sport, d.dport, d.flags, d.seq, d.ip_bytes, d.payload_wire)
        if len(ok):
            self.now = max(self.now, int(pk.ts_ns[ok].max()))
        keys, ints, sides, h, ended, row_of = fk.assemble(
            self.keys,
            self.ints,
            self.sides,
            ok,
            (*columns, pk.ts_ns, pk.pos),
            d.src,
            d.dst,
            self.limits,
        )
        proto = ints[:, fk.PROTO]
        idle = ended | (ints[:, fk.LAST_TS] < self.now - self.timeouts.of(proto))
        keep = ~idle
        self.keys, self.ints, self.sides, self.h = keys[keep], ints[keep], sides[keep], h[keep]
        return parts(keys[idle], ints[idle], sides[idle], h[idle]), ints[row_of, fk.FIRST_POS]

    def active(self) -> Parts:
        """The flows held now (still active), left in place."""
        return parts(self.keys, self.ints, self.sides, self.h)

    def finish(self) -> Parts | None:
        """Every flow still held, at the end of the capture."""
        if not len(self.h):
            return None
        out = parts(self.keys, self.ints, self.sides, self.h)
        self.h = np.zeros(0, np.uint64)
        return out
