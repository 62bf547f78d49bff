"""What a reader is, and what it is given.

A reader turns one input file into rows of the traffic tables. It is registered
under the entry point group ``vigile.readers`` (built-in readers too) and must:

* recognise its format from content (:meth:`Reader.sniff` sees the first 64 KiB,
  already decompressed), never from the file name;
* stream: memory bounded by its batch size, not by the file size;
* hand every unreadable record to :meth:`Sink.reject` with its position, and carry
  on with the next one; raise :class:`~vigile.errors.InputError` only when nothing
  more can be read (a missing required field, an unusable header);
* raise :class:`SkipSource` for inputs of its format that vigile does not use
  (a Zeek ``weird.log``), so they are reported, not refused.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol

import pyarrow as pa

HEAD_BYTES = 64 * 1024


class SkipSource(Exception):
    """The input is of a known format but holds nothing vigile uses."""


class _CountingReader(io.RawIOBase):
    """Counts the bytes read from the file underneath a decompressor (for progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self.consumed += n or 0
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass
class SourceFile:
    """An input file: where it is, its size and hash, and its decompressed content."""

    path: Path
    size: int
    sha256: str
    head: bytes
    compression: str | None

    @classmethod
    def probe(cls, path: Path) -> SourceFile:
        """Hash the file and read its first (decompressed) bytes."""
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        with path.open("rb") as f:
            magic = f.read(4)
        compression = _compression(magic)
        src = cls(path, path.stat().st_size, digest.hexdigest(), b"", compression)
        with src.open() as stream:
            try:
                src.head = stream.read(HEAD_BYTES)
            except (OSError, EOFError, ValueError):
                src.head = b""
        return src

    @property
    def source_id(self) -> int:
        """63 bits of the content hash: stable, engine-independent."""
        return int(self.sha256[:16], 16) >> 1

    def open(self) -> BinaryIO:
        """The decompressed content as a binary stream; ``.consumed`` counts raw bytes."""
        counter = _CountingReader(self.path.open("rb"))
        buffered = io.BufferedReader(counter, 1 << 20)
        stream: BinaryIO
        if self.compression == "gzip":
            stream = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
        elif self.compression == "bzip2":
            stream = bz2.BZ2File(buffered)  # type: ignore[assignment]
        else:
            stream = buffered
        stream.consumed_counter = counter  # type: ignore[attr-defined]
        return stream


def _compression(magic: bytes) -> str | None:
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic[:3] == b"BZh":
        return "bzip2"
    return None


class Sink(Protocol):
    """Where a reader sends what it read (provided by the ingest pipeline)."""

    def emit(self, table: str, columns: Mapping[str, pa.Array], num_rows: int) -> None:
        """Rows for a traffic table; missing nullable columns become null."""

    def reject(self, position: int, reason: str, raw: str | bytes | None = None) -> None:
        """A record that could not be read, kept aside with where it was and why."""

    def notice(self, message: str) -> None:
        """A non-fatal remark shown once (an unknown field, a missing trailer)."""

    def set_log_type(self, log_type: str) -> None:
        """What kind of log the input holds (conn, dns, …)."""

    def progress(self, raw_bytes: int) -> None:
        """How many bytes of the file (as stored) have been consumed so far."""


class Reader(Protocol):
    """One input format."""

    name: ClassVar[str]
    position_unit: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True if ``head`` (first 64 KiB, decompressed) is this format."""
        ...

    def read(self, source: SourceFile, sink: Sink) -> None:
        """Read the whole input into ``sink``."""
        ...
