"""Compress, seal and pack records on one worker thread, while the caller reads the network.

zstd, AES-GCM, SHA-256 and file writes release the GIL, so a backup that hands each new
message here keeps reading the next ones from the server meanwhile (measured in
docs/benchmarks.md). One worker, so records reach a pack in the order they were added and
only that thread ever touches the open pack.

Records travel in batches (a few MiB or a few dozen messages) to keep the hand-over cheap;
at most ``in_flight`` batches wait, which bounds memory. A pack that the worker completes
is published (fsynced, renamed) there and returned to the caller by the next :meth:`add`
or :meth:`flush`, to be indexed on the caller's thread (SQLite connections stay on the
thread that opened them). A write error is raised by the next :meth:`add` or
:meth:`flush`; the unfinished pack is removed and nothing after it is written.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import cast

import zstandard

from vigile.vault.crypto import Keys
from vigile.vault.pack import RECORD_HEAD, ZSTD_LEVEL, PackWriter, RecordRef

_Bytes = bytes | bytearray | memoryview  # what zstandard's stubs accept (a list is invariant)
#: A published pack: its name, size and records.
Published = tuple[str, int, list[RecordRef]]


class BackgroundPacker:
    """Appends sealed records to packs of about ``pack_size`` bytes on a worker thread."""

    def __init__(
        self,
        root: Path,
        keys: Keys,
        pack_size: int,
        *,
        batch_bytes: int = 4 << 20,
        batch_count: int = 32,
        in_flight: int = 3,
    ) -> None:
        self.root = root
        self.keys = keys
        self.pack_size = pack_size
        self.batch_bytes = batch_bytes
        self.batch_count = batch_count
        self.in_flight = in_flight
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vigile-packer")
        self._batch: list[tuple[bytes, bytes, bytes]] = []
        self._batch_size = 0
        self._futures: deque[Future[list[Published]]] = deque()
        # Worker-side state: touched only by tasks on the executor's one thread.
        self._writer: PackWriter | None = None
        self._zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
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
        """Stop the worker, drop what is queued and remove the unfinished pack."""
        self._batch.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def _submit(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_size = self._batch, [], 0
            self._futures.append(self._executor.submit(self._write, batch))

    def _collect(self, wait_for: int) -> list[Published]:
        """Results of finished batches, waiting until at most ``wait_for`` remain queued."""
        published: list[Published] = []
        while self._futures and (len(self._futures) > wait_for or self._futures[0].done()):
            published += self._futures.popleft().result()  # re-raises the worker's error
        return published

    # ---- on the worker thread -------------------------------------------------------

    def _write(self, batch: list[tuple[bytes, bytes, bytes]]) -> list[Published]:
        if self._failed is not None:
            raise self._failed
        published = []
        try:
            # One call compresses the whole batch (python-zstandard's C backend, without
            # the GIL; frames identical to compress()), and the sealed records of a batch
            # go to the pack in one write: few hand-overs of the GIL per batch rather than
            # several per message, which the thread reading the network would wait on.
            sealed = self.keys.seal_many(
                self._compress([c for _, _, c in batch]), [k + i for k, i, _ in batch]
            )
            records = [(k, i, s) for (k, i, _), s in zip(batch, sealed, strict=True)]
            while records:
                if self._writer is None:
                    self._writer = PackWriter(self.root)
                room = self.pack_size - self._writer.size
                take = 0
                while take < len(records) and room > 0:
                    room -= RECORD_HEAD + len(records[take][2])
                    take += 1
                self._writer.add_many(records[:take])
                records = records[take:]
                if self._writer.size >= self.pack_size:
                    published += self._publish()
        except BaseException as e:
            self._fail(e)
            raise
        return published

    def _compress(self, contents: list[bytes]) -> list[bytes]:
        if not any(contents):  # the batch call refuses a batch of nothing but empty records
            return [self._zc.compress(c) for c in contents]
        compressed = self._zc.multi_compress_to_buffer(cast("list[_Bytes]", contents))
        return [compressed[n].tobytes() for n in range(len(compressed))]

    def _publish(self) -> list[Published]:
        if self._failed is not None:
            raise self._failed
        if self._writer is None:
            return []
        writer, self._writer = self._writer, None
        try:
            name, records = writer.finish()
        except BaseException as e:
            writer.abort()
            self._fail(e)
            raise
        return [(name, writer.size, records)]

    def _fail(self, error: BaseException) -> None:
        self._failed = error
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
