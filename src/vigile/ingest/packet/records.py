"""Records of a capture file as NumPy arrays, and what a file-format framer is.

:class:`Framer` is the contract of a file format (:mod:`.pcapfile`, :mod:`.pcapng`):
``walk`` notes the offsets of the complete records in a chunk (each record's length
gives the next one's offset: compiled for pcap, a Python loop for pcapng) and stops at
damage (``fail``); ``columns`` reads the fixed-offset record header fields of all of
them (pcap: the compiled walk has read them already).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

CHUNK_BYTES = 32 << 20
#: What a framer walks: a buffer read from the file, or the file's memory mapping.
Chunk = bytearray | mmap.mmap
#: At most this many records per chunk, which bounds the per-packet arrays of a chunk
#: of small packets.
MAX_RECORDS = 1 << 17
#: Zero bytes after each chunk so fixed-size header gathers never run off the end.
PAD = 256
#: Largest record accepted (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_CAPLEN = 262_144


@dataclass
class Packets:
    """One chunk of records: ``buf`` holds the bytes, the arrays one entry per record."""

    buf: np.ndarray  # uint8, chunk bytes followed by PAD bytes or more (zeros, or the file's)
    data_off: np.ndarray  # int64 offset of each packet's first byte in buf
    caplen: np.ndarray  # int64 captured length
    wirelen: np.ndarray  # int64 original length on the wire
    ts_ns: np.ndarray  # int64 nanoseconds since the epoch
    linktype: np.ndarray  # int64 link-layer header type
    pos: np.ndarray  # int64 byte offset of the record in the file

    def __len__(self) -> int:
        return len(self.data_off)

    def select(self, keep: np.ndarray) -> Packets:
        """The records where ``keep`` is true (same buffer)."""
        if keep.all():
            return self
        cols = (self.data_off, self.caplen, self.wirelen, self.ts_ns, self.linktype, self.pos)
        return Packets(self.buf, *(c[keep] for c in cols))


@dataclass
class Damage:
    """Where the file stops being a readable capture (``fatal``), or a bad record, and why."""

    position: int
    reason: str
    raw: bytes
    fatal: bool = True


@dataclass
class Interface:
    linktype: int
    snaplen: int
    ns_per_unit: float  # 1e3 for microseconds, 1 for nanoseconds
    offset_s: int = 0


class Walk:
    """What a framer found in one chunk, before conversion to arrays."""

    def __init__(self) -> None:
        self.pos: list[int] | np.ndarray = []  # record offsets in the chunk
        # Record header fields when the walk read them (pcap), one row per record.
        self.fields: np.ndarray | None = None
        # Records parsed one by one (pcapng simple/obsolete blocks): pos, data offset,
        # caplen, wirelen, interface, raw timestamp.
        self.singles: list[tuple[int, int, int, int, int, int]] = []


class Framer:
    """Walks the records of one chunk; subclasses know one file format."""

    def __init__(self) -> None:
        self.interfaces: list[Interface] = []
        self.damage: Damage | None = None

    def walk(self, buf: Chunk, end: int, start: int, base: int, walk: Walk) -> int:
        """Note the complete records in ``buf[start:end]``; return where the next begins."""
        raise NotImplementedError

    def columns(self, view: np.ndarray, pos: np.ndarray, walk: Walk) -> tuple[np.ndarray, ...]:
        """data offset, caplen, wirelen, interface and raw timestamp of each record."""
        raise NotImplementedError

    def fail(self, buf: Chunk, off: int, base: int, reason: str) -> int:
        self.damage = Damage(base + off, reason, bytes(buf[off : off + 64]))
        return off


def gather_u32(view: np.ndarray, starts: np.ndarray, count: int, little: bool) -> np.ndarray:
    """``count`` consecutive 32-bit integers at each of ``starts``, as int64 columns."""
    idx = starts[:, None] + np.arange(count * 4)
    raw = view[idx].reshape(len(starts), count, 4).astype(np.int64)
    if little:
        return raw[..., 0] | raw[..., 1] << 8 | raw[..., 2] << 16 | raw[..., 3] << 24
    return raw[..., 3] | raw[..., 2] << 8 | raw[..., 1] << 16 | raw[..., 0] << 24
