"""Framing of pcap and pcapng files into arrays of packet records.

The file is read in chunks of :data:`CHUNK_BYTES`; each chunk becomes one
:class:`Packets` (its bytes as a NumPy buffer plus one array entry per record). An
uncompressed file is memory-mapped and its chunks are windows of the mapping (no copy;
the pages of a chunk are released when the next is asked for); the last chunk, and any
stream (a decompressor), are read into a buffer with zero bytes after the data.
The record walk (each record's length gives the next one's offset, so it cannot be
vectorised) is compiled (:mod:`.framing`), for pcapng around a Python loop for the rarer blocks;
everything else is read from the buffer with NumPy gathers.

Formats: pcap (both byte orders, micro- and nanosecond) as in
https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html and pcapng (sections of
either byte order, several interfaces with their own link type, ``if_tsresol`` and
``if_tsoffset``; enhanced, simple and obsolete packet blocks) as in
https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-01.html.

Damage (a bad magic, a block or record length that cannot be right, a truncated
last record) ends the walk: every complete record before it is returned, then a
:class:`Damage` with the byte offset where the file stops making sense.
"""

from __future__ import annotations

import io
import mmap
import struct
from collections.abc import Generator, Iterator
from typing import BinaryIO

import numpy as np

from vigile.ingest.base import advise
from vigile.ingest.packet.framing import walk_pcap
from vigile.ingest.packet.magic import PCAP_MAGICS, capture_kind
from vigile.ingest.packet.pcapng import PcapngFramer
from vigile.ingest.packet.records import (
    CHUNK_BYTES,
    MAX_CAPLEN,
    MAX_RECORDS,
    PAD,
    Chunk,
    Damage,
    Framer,
    Interface,
    Packets,
    Walk,
    gather_u32,
)

__all__ = ["CHUNK_BYTES", "MAX_RECORDS", "Damage", "Packets", "read_packets"]


class _PcapFramer(Framer):
    def __init__(self, header: bytes) -> None:
        super().__init__()
        endian, ns_per_unit = PCAP_MAGICS[header[:4]]
        self.little = endian == "<"
        snaplen, network = struct.unpack_from(endian + "II", header, 16)
        # The top bits of the link type field carry FCS information (pcap draft §4).
        self.interfaces.append(Interface(network & 0x03FF_FFFF, snaplen, ns_per_unit))
        # libpcap refuses a record longer than both the snap length and its own maximum.
        self.limit = max(snaplen, MAX_CAPLEN)

    def walk(self, buf: Chunk, end: int, start: int, base: int, walk: Walk) -> int:
        view = np.frombuffer(buf, np.uint8)
        pos, fields, off, bad = walk_pcap(view, start, end, self.limit, self.little, MAX_RECORDS)
        walk.pos, walk.fields = pos, fields
        if bad >= 0:
            return self.fail(buf, off, base, f"record length {bad} exceeds {self.limit}")
        return off

    def columns(self, view: np.ndarray, pos: np.ndarray, walk: Walk) -> tuple[np.ndarray, ...]:
        f = walk.fields if walk.fields is not None else gather_u32(view, pos, 4, self.little)
        units = 1_000_000_000 // int(self.interfaces[0].ns_per_unit)
        return pos + 16, f[:, 2], f[:, 3], np.zeros(len(pos), np.int64), f[:, 0] * units + f[:, 1]


def read_packets(
    stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES, mapped: mmap.mmap | None = None
) -> Iterator[Packets | Damage]:
    """Chunks of packets from a capture stream, then a :class:`Damage` if it is damaged.

    ``mapped``, if given, is the same file memory-mapped (``ACCESS_COPY``): chunks are
    then read from it and ``stream`` only for its header. Each :class:`Packets` is valid
    until the next item is asked for (the buffer is reused, or the mapping's pages
    released). Non-fatal :class:`Damage` items (bad records) come before their chunk.

    >>> import io
    >>> hdr = b"\\xd4\\xc3\\xb2\\xa1" + bytes(12) + (65535).to_bytes(4, "little")
    >>> hdr += bytes([1, 0, 0, 0])
    >>> rec = (7).to_bytes(4, "little") + bytes(4) + (3).to_bytes(4, "little") * 2 + b"abc"
    >>> [type(x).__name__ for x in read_packets(io.BytesIO(hdr + rec + rec[:5]))]
    ['Packets', 'Damage']
    """
    head = stream.read(24)
    kind = capture_kind(head)
    if kind is None:
        yield Damage(0, "not a pcap or pcapng file (bad magic)", head)
        return
    framer: Framer = _PcapFramer(head) if kind == "pcap" else PcapngFramer()
    carry, base, start, eof = head, 0, 24 if kind == "pcap" else 0, False
    left: int | None = None  # bytes of the stream not read yet, where known
    if mapped is not None:
        at = yield from _mapped_chunks(framer, mapped, start, chunk_bytes)
        if at is None:
            return
        # The rest (at most a chunk and a little) is read like a stream, zero-padded.
        stream, carry, base, start = io.BytesIO(mapped[at:]), b"", at, 0
        left = len(mapped) - at
    buf, stuck = bytearray(), False
    while True:
        # One buffer, reused: a chunk's Packets are valid until the next one is asked for.
        # Where the rest is known to be shorter than a chunk, the buffer is no longer than
        # it: a new buffer is zeroed page by page (16 ms for a 32 MiB chunk), which a
        # small capture, and the last part of a mapped one, would pay for nothing.
        room = chunk_bytes if left is None else min(chunk_bytes, left)
        if len(buf) < len(carry) + room + PAD or len(buf) > 3 * (chunk_bytes + PAD):
            # Room for a partial record carried over, so the buffer is rarely replaced.
            spare = 0 if room < chunk_bytes else min(chunk_bytes, MAX_CAPLEN)
            buf = bytearray(len(carry) + room + PAD + spare)
        buf[: len(carry)] = carry
        # Top the buffer up to a chunk; read a whole chunk more if the last walk was stuck
        # on one record longer than what the buffer held.
        want = chunk_bytes if stuck else max(chunk_bytes - len(carry), 0)
        got = (
            0 if eof or not want else _fill(stream, memoryview(buf)[len(carry) : len(carry) + want])
        )
        eof = eof or got < want
        left = None if left is None else left - got
        end = len(carry) + got
        buf[end : end + PAD] = bytes(PAD)
        walk = Walk()
        off = framer.walk(buf, end, start, base, walk)
        if len(walk.pos) or walk.singles:
            packets = _packets(framer, buf, end, base, walk)
            yield from _bad_records(packets, framer.interfaces)
            yield packets.select(packets.caplen > 0)
        if framer.damage is not None:
            yield framer.damage
            return
        if eof and off == start and not (len(walk.pos) or walk.singles):
            if off < end:
                reason = "truncated record at end of file"
                yield Damage(base + off, reason, bytes(buf[off : min(end, off + 64)]))
            return
        stuck = not (len(walk.pos) or walk.singles)
        base += off
        carry = bytes(buf[off:end])
        start = 0


def _mapped_chunks(
    framer: Framer, mapped: mmap.mmap, start: int, chunk_bytes: int
) -> Generator[Packets | Damage, None, int | None]:
    """Whole chunks straight from the mapping while more than a chunk is left.

    Returns (as the generator's value) the offset where the rest begins, or None after
    fatal damage. Every chunk is followed in the mapping by at least :data:`PAD` bytes
    of the file, so header gathers past a chunk's last record stay inside it.
    """
    size, page = len(mapped), mmap.PAGESIZE
    released, span = 0, chunk_bytes
    while size - start > span + PAD:
        walk = Walk()
        off = framer.walk(mapped, start + span, start, 0, walk)
        if len(walk.pos) or walk.singles:
            packets = _packets(framer, mapped, start + span, 0, walk)
            yield from _bad_records(packets, framer.interfaces)
            yield packets.select(packets.caplen > 0)
        if framer.damage is not None:
            yield framer.damage
            return None
        if off == start:  # one record longer than a chunk: look further
            span += chunk_bytes
            continue
        span = chunk_bytes
        # The chunk is done with: give its pages back (they stay in the page cache).
        upto = off // page * page
        if upto > released:
            advise(mapped, "MADV_DONTNEED", released, upto - released)
            released = upto
        start = off
    return start


def _bad_records(pk: Packets, interfaces: list[Interface]) -> Iterator[Damage]:
    """Records that are framed but wrong: no bytes, or more bytes than the snap length.

    Their caplen is set to 0 so the caller drops them; the walk goes on after them.
    """
    snap = interfaces[0].snaplen if len(interfaces) == 1 else 0
    over = (snap > 0) & (pk.caplen > snap)
    for i in np.flatnonzero((pk.caplen == 0) | over).tolist():
        start = int(pk.data_off[i])
        raw = bytes(pk.buf[start : start + min(int(pk.caplen[i]), 64)])
        if pk.caplen[i] == 0:
            reason = "record with no captured bytes"
        else:
            reason = f"record length {int(pk.caplen[i])} exceeds the snap length {int(snap)}"
        yield Damage(int(pk.pos[i]), reason, raw, fatal=False)
        pk.caplen[i] = 0


def _fill(stream: BinaryIO, target: memoryview) -> int:
    """Read until ``target`` is full or the stream ends; the number of bytes read."""
    got = 0
    while got < len(target):
        n = stream.readinto(target[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _packets(framer: Framer, buf: Chunk, end: int, base: int, walk: Walk) -> Packets:
    view = np.frombuffer(buf, dtype=np.uint8)
    pos = np.array(walk.pos, dtype=np.int64)
    data_off, caplen, wirelen, iface, ts_raw = framer.columns(view, pos, walk)
    if walk.singles:
        extra = np.array(walk.singles, dtype=np.int64).T
        order = np.argsort(np.concatenate([pos, extra[0]]), kind="stable")
        pos = np.concatenate([pos, extra[0]])[order]
        cols = [data_off, caplen, wirelen, iface, ts_raw]
        data_off, caplen, wirelen, iface, ts_raw = (
            np.concatenate([c, e])[order] for c, e in zip(cols, extra[1:], strict=True)
        )
    ifaces = framer.interfaces or [Interface(-1, 0, 1000.0)]
    iface = np.clip(iface, 0, len(ifaces) - 1)
    linktype = np.array([i.linktype for i in ifaces], np.int64)[iface]
    ts_ns = np.zeros(len(pos), np.int64)
    for k, itf in enumerate(ifaces):
        sel = iface == k
        if not sel.any():
            continue
        if itf.ns_per_unit == int(itf.ns_per_unit):
            ts_ns[sel] = ts_raw[sel] * int(itf.ns_per_unit)
        else:
            ts_ns[sel] = (ts_raw[sel] * itf.ns_per_unit).astype(np.int64)
        ts_ns[sel] += itf.offset_s * 1_000_000_000
    caplen = np.minimum(caplen, np.maximum(end - data_off, 0))
    return Packets(view, data_off, caplen, wirelen, ts_ns, linktype, pos + base)
