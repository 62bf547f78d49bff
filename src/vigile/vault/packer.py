"""Compress, seal and pack records on one worker thread, while the caller reads the network.

zstd, AES-GCM, the pack hash and file writes release the GIL, so a backup that hands each new
message here keeps reading the next ones from the server meanwhile (measured in
docs/benchmarks.md). One worker, so records reach a pack in the order they were added and
only that thread ever touches the open pack.

In a vault of format version 5 or later, the records of a batch are sealed several to a
frame (:func:`vigile.vault.pack.frame_units`); in earlier vaults, each record alone.

Records travel in batches (4 MiB or 64 messages: 4-5% less time for a full backup than
batches of 32, docs/benchmarks.md) to keep the hand-over cheap; at most ``in_flight``
batches wait, which bounds memory. A pack that the worker completes is handed to a second
thread that publishes it (fsync, rename under the hash of its bytes, which the worker took
block by block as it wrote them, fsync of the folder) while the worker goes on filling
the next pack: the waits for the disk are off the worker's path.
That thread also indexes each pack it has published (``on_published``, given by the
vault: its index rows are committed right after the rename, as before, but the reading
thread no longer spends 0.1-0.15 CPU-s of a full backup inserting them). Published
packs are returned to the caller by the next :meth:`add` or :meth:`flush`;
:meth:`flush` waits for every pack to be published and indexed. A write, fsync or index
error is raised by the next :meth:`add` or :meth:`flush`; the unfinished packs are
removed and nothing after the error is written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import cast

from cryptography.utils import Buffer

from vigile.vault.crypto import Keys, sealed_size
from vigile.vault.pack import (
    RECORD_HEAD,
    PackedRecord,
    PackWriter,
    Unit,
    compressor,
    frame_units,
    put_head,
)

_Bytes = bytes | bytearray | memoryview  # what zstandard's stubs accept (a list is invariant)
#: A published pack: its name, size and records (:data:`vigile.vault.pack.PackedRecord`).
Published = tuple[str, int, list[PackedRecord]]
#: A completed pack on its way to being published (see :meth:`BackgroundPacker._publish`).
Publishing = Future[Published]


class BackgroundPacker:
    """Appends sealed records to packs of about ``pack_size`` bytes on a worker thread."""

    def __init__(
        self,
        root: Path,
        keys: Keys,
        pack_size: int,
        *,
        batch_bytes: int = 4 << 20,
        batch_count: int = 64,
        in_flight: int = 3,
        on_published: Callable[[Published], None] | None = None,
    ) -> None:
        self.root = root
        self.on_published = on_published
        self.keys = keys
        self.pack_size = pack_size
        self.batch_bytes = batch_bytes
        self.batch_count = batch_count
        self.in_flight = in_flight
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vigile-packer")
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="vigile-pack-sync")
        self._batch: list[tuple[bytes, bytes, bytes]] = []
        self._batch_size = 0
        self._futures: deque[Future[list[Publishing]]] = deque()
        self._publishing: deque[Publishing] = deque()  # oldest first; caller's thread only
        # Worker-side state: touched only by tasks on the executor's one thread (and, for
        # the list of handed-over packs, by abort() once that thread has stopped).
        self._writer: PackWriter | None = None
        self._handed_over: list[tuple[Publishing, PackWriter]] = []
        self._zc = compressor()
        # The block a batch is sealed into, reused from batch to batch (grown when a batch
        # needs more): a new zero-filled block per batch cost a page fault per 4 KiB.
        self._block = bytearray()
        self._failed: BaseException | None = None

    def add(self, kind: bytes, blob_id: bytes, content: bytes) -> list[Published]:
        """Queue one record; returns the packs published since the last call."""
        return self.add_many([(kind, blob_id, content)])

    def add_many(self, records: list[tuple[bytes, bytes, bytes]]) -> list[Published]:
        """Queue records ``(kind, id, content)``; returns the packs published since."""
        for record in records:
            self._batch.append(record)
            self._batch_size += len(record[2])
            if len(self._batch) >= self.batch_count or self._batch_size >= self.batch_bytes:
                self._submit()
        return self._collect(wait_for=self.in_flight)

    def flush(self) -> list[Published]:
        """Seal everything queued and publish the current pack; returns what was published."""
        self._submit()
        self._futures.append(self._executor.submit(self._publish))
        return self._collect(wait_for=0)

    def abort(self) -> None:
        """Stop both threads, drop what is queued and remove the unpublished packs."""
        self._batch.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._syncer.shutdown(wait=True, cancel_futures=True)
        for publishing, writer in self._handed_over:
            if publishing.cancelled():
                writer.abort()
        self._handed_over.clear()
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def _submit(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_size = self._batch, [], 0
            self._futures.append(self._executor.submit(self._write, batch))

    def _collect(self, wait_for: int) -> list[Published]:
        """Packs published so far, waiting until at most ``wait_for`` batches remain queued
        (and, with ``wait_for`` 0, until every completed pack is published)."""
        while self._futures and (len(self._futures) > wait_for or self._futures[0].done()):
            self._publishing += self._futures.popleft().result()  # re-raises the worker's error
        published: list[Published] = []
        while self._publishing and (wait_for == 0 or self._publishing[0].done()):
            published.append(self._publishing.popleft().result())  # re-raises an fsync error
        return published

    # ---- on the worker thread -------------------------------------------------------

    def _write(self, batch: list[tuple[bytes, bytes, bytes]]) -> list[Publishing]:
        if self._failed is not None:
            raise self._failed
        published = []
        try:
            # One call compresses the whole batch (python-zstandard's C backend, without
            # the GIL; frames identical to compress()), and the records of a batch are
            # sealed straight into one block, written to the pack in one write: few
            # hand-overs of the GIL per batch rather than several per message, which the
            # thread reading the network would wait on, and no copy of the message bytes
            # (but one, in format version 5: a frame's messages are joined to be compressed).
            units = self._units(batch)
            compressed = self._compress([c for _, _, _, c in units])
            lengths = [
                len(t) + sealed_size(len(c))
                for (_, _, t, _), c in zip(units, compressed, strict=True)
            ]
            start = 0
            while start < len(units):
                if self._writer is None:
                    self._writer = PackWriter(self.root, self.keys.pack_hash)
                room, end = self.pack_size - self._writer.size, start
                while end < len(units) and room > 0:
                    room -= RECORD_HEAD + lengths[end]
                    end += 1
                part = slice(start, end)
                block = self._seal_block(units[part], lengths[part], compressed[part])
                records = [
                    (k, i, n) for (k, i, _, _), n in zip(units[part], lengths[part], strict=True)
                ]
                self._writer.add_block(block, records)
                start = end
                if len(self._block) > 2 * self.batch_bytes:  # one very large message
                    self._block = bytearray()
                if self._writer.size >= self.pack_size:
                    published += self._publish()
        except BaseException as e:
            self._fail(e)
            raise
        return published

    def _units(self, batch: list[tuple[bytes, bytes, bytes]]) -> list[Unit]:
        """What the batch is sealed as: frames (format version 5), or one record each."""
        if self.keys.frames:
            return frame_units(batch, self.keys.blob_id)
        return [(kind, blob_id, b"", content) for kind, blob_id, content in batch]

    def _compress(self, contents: list[bytes]) -> list[Buffer]:
        if not any(contents):  # the batch call refuses a batch of nothing but empty records
            return [self._zc.compress(c) for c in contents]
        compressed = self._zc.multi_compress_to_buffer(cast("list[_Bytes]", contents))
        # Segments of the batch's output buffer (they support the buffer protocol, which
        # the stubs' Buffer does not name): views, not copies.
        return cast("list[Buffer]", [compressed[n] for n in range(len(compressed))])

    def _seal_block(
        self, units: list[Unit], lengths: list[int], compressed: list[Buffer]
    ) -> memoryview:
        """Record headers, member tables and sealed contents, laid out as
        :meth:`PackWriter.add_block` takes (a view of the reused block: valid until the
        next call)."""
        size = sum(RECORD_HEAD + n for n in lengths)
        if len(self._block) < size:
            self._block = bytearray(size + (size >> 2))  # room for the next batches
        block = self._block
        view, outs, aads, offset = memoryview(block), [], [], 0
        for (kind, blob_id, table, _), n in zip(units, lengths, strict=True):
            put_head(block, offset, kind, blob_id, n)
            start = offset + RECORD_HEAD
            block[start : start + len(table)] = table
            outs.append(view[start + len(table) : start + n])
            aads.append(kind + blob_id + table)
            offset = start + n
        self.keys.seal_many_into(compressed, aads, outs)
        return view[:size]

    def _publish(self) -> list[Publishing]:
        """Hand the current pack (if any) over to be published."""
        if self._failed is not None:
            raise self._failed
        if self._writer is None:
            return []
        writer, self._writer = self._writer, None
        publishing = self._syncer.submit(self._finish, writer)
        # Kept until published, so that abort() can remove a pack it stops from publishing.
        self._handed_over = [(p, w) for p, w in self._handed_over if not p.done()]
        self._handed_over.append((publishing, writer))
        return [publishing]

    # ---- on the publishing thread ---------------------------------------------------

    def _finish(self, writer: PackWriter) -> Published:
        """fsync and rename one complete pack (the worker no longer touches it)."""
        if self._failed is not None:  # an earlier pack failed: publish nothing after it
            writer.abort()
            raise self._failed
        try:
            name, records = writer.finish()
            published = (name, writer.size, records)
            if self.on_published is not None:
                self.on_published(published)
        except BaseException as e:
            writer.abort()  # once published, only closes (the pack is indexed at next open)
            self._failed = e  # the worker checks it before its next batch
            raise
        return published

    def _fail(self, error: BaseException) -> None:
        self._failed = error
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
