"""Pack files: the only place message content is stored.

A pack is an append-only file of bounded size, named by a hash of its bytes (SHA-256, or
BLAKE3 in vaults made since format version 4: the vault's ``pack_hash``, crypto.py)::

    header   b"VGPACK\\x00\\x01"                      8 bytes
    record   kind (1 byte: M message, T folder tree)
             id (32 bytes: keyed hash of the uncompressed content, crypto.py)
             length (4 bytes, big endian) of what follows
             nonce (12) || AES-256-GCM(zstd(content), aad = kind || id) || tag (16)
    frame    kind F (1 byte), since vault format version 5: several records in one zstd frame
             id (32 bytes: keyed hash of the member table below)
             length (4 bytes, big endian) of what follows
             member table: count (4 bytes), then per member its kind (1), id (32) and
                 length (4); a member's offset in the frame's content is the sum of the
                 lengths before it
             nonce (12) || AES-256-GCM(zstd(the members' contents, back to back),
                 aad = F || id || member table) || tag (16)

A frame holds at most :data:`FRAME_BYTES` of content (a larger record is a frame alone):
records compressed together cost less CPU and space than one zstd frame each (each small
frame builds and writes its own entropy tables), and a flipped byte costs at most one
frame's members. The member table is in the clear, as record heads are, so that the
index can be rebuilt from a pack without the keys (:func:`scan_pack`); it is
authenticated with the frame.

A pack is written under a temporary name, flushed to disk and renamed into place only when
complete, so a crash leaves either a whole pack or a ``.tmp-*`` file that the next writer
removes. Because a pack is named by its hash, one flipped byte anywhere in it (header, gap,
record) is noticed by re-hashing; the per-record tags tell *which* records are damaged.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import blake3
import zstandard

MAGIC = b"VGPACK\x00\x01"
#: zstd parameters for records and snapshots: level 1's (the library default, level 3,
#: compresses the benchmark mail 11% slower to a 0.2% smaller vault; level 1 is the fastest
#: that keeps Huffman-coded literals, which base64 attachments need), with a hash table of
#: 13 bits instead of 14 and matches of 6 bytes or more instead of 7: 2-4% less
#: compression time, the vault within 0.4% of level 1's size on the benchmark mail and on
#: plain text (docs/benchmarks.md). No checksum: each record's AES-GCM tag covers it.
#: Readers do not depend on any of this.
ZSTD_PARAMS = zstandard.ZstdCompressionParameters(
    strategy=zstandard.STRATEGY_FAST,
    window_log=19,
    chain_log=13,
    hash_log=13,
    search_log=1,
    min_match=6,
    target_length=0,
    write_checksum=0,
    write_content_size=1,
)
_HEAD = struct.Struct(">c32sI")
RECORD_HEAD = _HEAD.size  # 37
KINDS = (b"M", b"T")
FRAME = b"F"
#: The most content (uncompressed bytes) one frame holds: 128 KiB, 14 messages of the
#: benchmark's mail. zstd's CPU per message falls from 24 to 16.5 us at 128 KiB and to
#: 16.2 at 256 KiB; the bound is what one flipped byte can cost (docs/benchmarks.md).
FRAME_BYTES = 128 << 10
_COUNT = struct.Struct(">I")
_MEMBER = struct.Struct(">c32sI")
MEMBER_SIZE = _MEMBER.size  # 37
#: Pack hashes by the name the vault config records (crypto.PACK_HASHES).
_HASHES: dict[str, Callable[..., Any]] = {"sha256": hashlib.sha256, "blake3": blake3.blake3}
#: A record as a pack writer lists it: kind, id, offset of its header, sealed length, and
#: for a frame's member its offset and length in the frame's content (None, None for a
#: record of its own). A plain tuple rather than a :class:`RecordRef` per record: a full
#: backup makes 20,000 of them, and they go straight into the index.
PackedRecord = tuple[bytes, bytes, int, int, int | None, int | None]


@dataclass(frozen=True)
class RecordRef:
    """Where a record sits: its pack, the offset of its header and its sealed length; for
    a member of a frame, the frame's, and the member's place in the frame's content."""

    kind: bytes
    blob_id: bytes
    pack: str
    offset: int
    length: int
    part_offset: int | None = None
    part_length: int | None = None

    @property
    def whole(self) -> tuple[str, int, int]:
        """The record (or frame) this record is read from: pack, offset, length."""
        return self.pack, self.offset, self.length


def frame_table(members: list[tuple[bytes, bytes, int]]) -> bytes:
    """A frame's member table, for members ``(kind, id, content length)``.

    >>> table = frame_table([(b"M", b"a" * 32, 5), (b"T", b"b" * 32, 7)])
    >>> parse_table(table + b"sealed")[0][1]
    (b'T', b'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 5, 7)
    """
    parts = [_COUNT.pack(len(members))]
    parts += [_MEMBER.pack(kind, blob_id, n) for kind, blob_id, n in members]
    return b"".join(parts)


#: What a pack writer seals: kind, id, the bytes before the sealed part (a frame's member
#: table; nothing for a record of its own) and the content to compress and seal.
Unit = tuple[bytes, bytes, bytes, bytes]


def frame_units(
    records: list[tuple[bytes, bytes, bytes]], frame_id: Callable[[bytes], bytes]
) -> list[Unit]:
    """Messages ``(kind, id, content)`` in frames of at most :data:`FRAME_BYTES` of content,
    in their order (a larger message is a frame alone, a frame ends where the next
    message would take it over the bound); ``frame_id`` names a frame by its
    member table (the vault's keyed hash). Folder trees stay records of their own: every
    listing, restore and verify reads each tree of a snapshot, and a tree in a frame
    would cost a frame's decompression each time (a 50-folder item restore took three
    times as long): each is a record, placed before the frame of the messages around it.

    >>> units = frame_units([(b"M", b"a" * 32, b"x" * 100_000)] * 3, lambda t: b"f" * 32)
    >>> [(kind, len(content)) for kind, _, _, content in units]
    [(b'F', 100000), (b'F', 100000), (b'F', 100000)]
    """
    units: list[Unit] = []
    members: list[tuple[bytes, bytes, int]] = []
    contents: list[bytes] = []
    size = 0
    for kind, blob_id, content in records:
        if kind != b"M":
            units.append((kind, blob_id, b"", content))
            continue
        if members and size + len(content) > FRAME_BYTES:
            units.append(_frame_unit(members, contents, frame_id))
            members, contents, size = [], [], 0
        members.append((kind, blob_id, len(content)))
        contents.append(content)
        size += len(content)
    if members:
        units.append(_frame_unit(members, contents, frame_id))
    return units


def _frame_unit(
    members: list[tuple[bytes, bytes, int]],
    contents: list[bytes],
    frame_id: Callable[[bytes], bytes],
) -> Unit:
    table = frame_table(members)
    content = contents[0] if len(contents) == 1 else b"".join(contents)
    return FRAME, frame_id(table), table, content


def parse_table(body: bytes | memoryview) -> tuple[list[tuple[bytes, bytes, int, int]], int]:
    """A frame's members ``(kind, id, offset, length)`` in its content, and where its
    sealed part begins; :class:`ValueError` if the table cannot be one."""
    if len(body) < _COUNT.size:
        raise ValueError("frame member table cut short")
    (count,) = _COUNT.unpack_from(body)
    end = _COUNT.size + count * MEMBER_SIZE
    if count == 0 or end > len(body):
        raise ValueError(f"frame member table of {count} members does not fit its frame")
    members, offset = [], 0
    for kind, blob_id, n in _MEMBER.iter_unpack(body[_COUNT.size : end]):
        if kind not in KINDS:
            raise ValueError("frame member of unknown kind")
        members.append((kind, blob_id, offset, n))
        offset += n
    return members, end


def compressor() -> zstandard.ZstdCompressor:
    """A compressor with :data:`ZSTD_PARAMS` (one per thread: they are not thread-safe)."""
    return zstandard.ZstdCompressor(compression_params=ZSTD_PARAMS)


def put_head(block: bytearray, offset: int, kind: bytes, blob_id: bytes, length: int) -> None:
    """Write a record header into ``block`` at ``offset``."""
    _HEAD.pack_into(block, offset, kind, blob_id, length)


def pack_path(root: Path, name: str) -> Path:
    return root / "packs" / name[:2] / name


class PackWriter:
    """Appends records to one temporary pack; :meth:`finish` publishes it under its hash."""

    def __init__(self, root: Path, pack_hash: str) -> None:
        self.root = root
        self.pack_hash = pack_hash
        (root / "packs").mkdir(parents=True, exist_ok=True)
        self.tmp = root / "packs" / f".tmp-{os.urandom(8).hex()}"
        self._file = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self.records: list[PackedRecord] = []
        self.size = 0
        # The pack's name is hashed from its bytes as they are written (see finish()).
        self._digest = _HASHES[pack_hash]()
        self._write(MAGIC)

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)
        self._digest.update(data)
        self.size += len(data)

    def add(self, kind: bytes, blob_id: bytes, sealed: bytes) -> None:
        self.add_many([(kind, blob_id, sealed)])

    def add_many(self, records: list[tuple[bytes, bytes, bytes]]) -> None:
        """Append records ``(kind, id, sealed)`` with one write."""
        parts: list[bytes] = []
        for kind, blob_id, sealed in records:
            parts += (_HEAD.pack(kind, blob_id, len(sealed)), sealed)
        self.add_block(b"".join(parts), [(kind, i, len(sealed)) for kind, i, sealed in records])

    def add_block(
        self, block: bytes | bytearray | memoryview, records: list[tuple[bytes, bytes, int]]
    ) -> None:
        """Append ``block``: the records ``(kind, id, sealed length)``, back to back, each a
        header (:func:`put_head`) and its sealed bytes; one write. ``block`` is not kept:
        the caller may reuse its buffer once this returns."""
        offset = self.size
        for kind, blob_id, length in records:
            if kind == FRAME:  # its members are what the index lists
                start = offset - self.size + RECORD_HEAD
                members, _ = parse_table(memoryview(block)[start : start + length])
                self.records += [(k, i, offset, length, o, n) for k, i, o, n in members]
            else:
                self.records.append((kind, blob_id, offset, length, None, None))
            offset += RECORD_HEAD + length
        if offset != self.size + len(block):
            raise ValueError("block size does not match its records")
        self._write(block)

    def finish(self) -> tuple[str, list[PackedRecord]]:
        """Flush, fsync, name and rename into place; returns the pack name and its records
        (:data:`PackedRecord`, what :meth:`vigile.vault.index.Index.add_pack` takes).

        The name is the hash of the bytes handed to the file, taken as they were written
        (one call per block of records): reading the file back from the page cache to
        hash it, as before, gave the same bytes for 0.02-0.03 CPU-s more per full backup
        (the copies out of the kernel; docs/benchmarks.md). ``vault verify`` re-hashes
        the file itself (:func:`hash_file`).
        """
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        name = str(self._digest.hexdigest())
        final = pack_path(self.root, name)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, final)
        _fsync_dir(final.parent)
        return name, self.records

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_record(path: Path, offset: int, length: int) -> tuple[bytes, bytes, bytes]:
    """Read one record: ``(kind, id, sealed)``; short reads raise :class:`ValueError`."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(RECORD_HEAD)
        if len(head) < RECORD_HEAD:
            raise ValueError("record header cut short")
        kind, blob_id, n = _HEAD.unpack(head)
        if n != length:
            raise ValueError(f"record length {n} where the index says {length}")
        sealed = f.read(n)
        if len(sealed) < n:
            raise ValueError("record cut short")
    return kind, blob_id, sealed


def scan_pack(path: Path) -> Iterator[RecordRef]:
    """Walk a pack's record headers (used to re-index packs the index does not know): one
    :class:`RecordRef` per record, and per member of each frame (read from its table).

    Stops with :class:`ValueError` at the first header that cannot be a record.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError("not a vigile pack (bad magic)")
        offset = len(MAGIC)
        while offset < size:
            head = f.read(RECORD_HEAD)
            if len(head) < RECORD_HEAD:
                raise ValueError(f"record header cut short at byte {offset}")
            kind, blob_id, n = _HEAD.unpack(head)
            if (kind not in KINDS and kind != FRAME) or offset + RECORD_HEAD + n > size:
                raise ValueError(f"bad record header at byte {offset}")
            if kind == FRAME:
                yield from _scan_frame(f, path.name, offset, n)
            else:
                yield RecordRef(kind, blob_id, path.name, offset, n)
            f.seek(offset + RECORD_HEAD + n)
            offset += RECORD_HEAD + n


def _scan_frame(f: BinaryIO, pack: str, offset: int, n: int) -> Iterator[RecordRef]:
    (count,) = _COUNT.unpack(f.read(_COUNT.size)) if n >= _COUNT.size else (0,)
    try:
        members, _ = parse_table(_COUNT.pack(count) + f.read(min(n, count * MEMBER_SIZE)))
    except ValueError as e:
        raise ValueError(f"bad frame at byte {offset}: {e}") from None
    for kind, blob_id, o, length in members:
        yield RecordRef(kind, blob_id, pack, offset, n, o, length)


def hash_file(path: Path, pack_hash: str) -> str:
    """The hash of the file's bytes (``pack_hash``: ``sha256`` or ``blake3``), hex.

    Read into one reused buffer: no new bytes object per chunk (that cost 25% more CPU
    with BLAKE3). Mapping the file instead saves 10% more, but the mapped pages then count
    in the process's memory: 13-15 MiB more at peak in a full backup (docs/benchmarks.md).
    """
    digest = _HASHES[pack_hash]()
    chunk = bytearray(1 << 20)
    view = memoryview(chunk)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(chunk):
            digest.update(view[:n])
    return str(digest.hexdigest())
