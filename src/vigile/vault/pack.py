"""Pack files: the only place message content is stored.

A pack is an append-only file of bounded size, named by a hash of its bytes (SHA-256, or
BLAKE3 in vaults made since format version 4: the vault's ``pack_hash``, crypto.py)::

    header   b"VGPACK\\x00\\x01"                      8 bytes
    record   kind (1 byte: M message, T folder tree)
             id (32 bytes: keyed hash of the uncompressed content, crypto.py)
             length (4 bytes, big endian) of what follows
             nonce (12) || AES-256-GCM(zstd(content), aad = kind || id) || tag (16)

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
from typing import Any

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
#: Pack hashes by the name the vault config records (crypto.PACK_HASHES).
_HASHES: dict[str, Callable[..., Any]] = {"sha256": hashlib.sha256, "blake3": blake3.blake3}
#: A record as a pack writer lists it: kind, id, offset of its header, sealed length. A
#: plain tuple rather than a :class:`RecordRef` per record: a full backup makes 20,000 of
#: them, and they go straight into the index.
PackedRecord = tuple[bytes, bytes, int, int]


@dataclass(frozen=True)
class RecordRef:
    """Where a record sits: its pack, the offset of its header and its sealed length."""

    kind: bytes
    blob_id: bytes
    pack: str
    offset: int
    length: int


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
            self.records.append((kind, blob_id, offset, length))
            offset += RECORD_HEAD + length
        if offset != self.size + len(block):
            raise ValueError("block size does not match its records")
        self._write(block)

    def finish(self) -> tuple[str, list[PackedRecord]]:
        """Flush, fsync, name and rename into place; returns the pack name and its records
        ``(kind, id, offset, length)`` (what :meth:`vigile.vault.index.Index.add_pack` takes).

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
    """Walk a pack's record headers (used to re-index packs the index does not know).

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
            if kind not in KINDS or offset + RECORD_HEAD + n > size:
                raise ValueError(f"bad record header at byte {offset}")
            yield RecordRef(kind, blob_id, path.name, offset, n)
            f.seek(n, os.SEEK_CUR)
            offset += RECORD_HEAD + n


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
