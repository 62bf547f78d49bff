"""Pack in a child process, so that the reading thread of a backup never waits for the GIL.

In one process, the packer's threads (``packer.py``) and the thread reading the network
share one GIL: the keyed BLAKE3 content ids let go of it for every message of 2 KiB or
more, and the reading thread then waits to get it back while the packer holds it (about
0.2 s of a 20,000-message full backup), and the whole backup runs on about one core.
:class:`PackerProcess` runs the same :class:`~vigile.vault.packer.BackgroundPacker` in a
process of its own: its main thread seals and writes each batch as it arrives
(``worker=False``), its publishing thread fsyncs, renames and indexes the packs, as in
one process.

**Transfer.** Message contents go through a ring of shared memory (an anonymous
``MAP_SHARED`` mapping made before the fork): the caller copies each content in once, and
the child compresses it from there; a small message on a pipe per batch says where its
records are (kind, id, place), and the child's answer frees that place once the batch is
sealed. A record larger than a batch goes through the pipe instead. At most ``in_flight``
batches wait, as with threads, and the ring bounds the bytes.

**Why fork, and when.** A spawned interpreter would import the vault code again (about
0.1 CPU-s); a fork costs a few milliseconds and the keys pass in memory, never through a
file. A fork is safe only if no other thread holds a lock at that moment, so
:func:`can_fork` requires the main thread to be the only one; the vault forks when it is
opened for a backup, before it opens its index (the child opens its own SQLite
connection: none is carried across the fork). Otherwise the vault packs on threads.

**Crash guarantees** (write order as in ``repo.py``). The child inherits the descriptor
of the vault's writer lock (``lock.py``): the lock is held while either process lives, so
no other writer starts while the child may still write. It asks the kernel for SIGKILL
when its parent dies (``PR_SET_PDEATHSIG``): a parent killed at any point leaves what a
killed single process leaves (a temporary pack, removed at the next open; a published
pack not yet indexed, indexed at the next open). End of file on its pipe (the parent
aborting or closing) makes the child remove its unpublished packs and exit. An error in
the child (disk full, fsync, SQLite) is sent to the parent and raised there by the next
:meth:`~PackerProcess.add_many` or :meth:`~PackerProcess.flush`, as the threads do; a
child that dies raises :class:`VaultError`.
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from cryptography.utils import Buffer

from vigile.vault.crypto import Keys
from vigile.vault.errors import VaultError
from vigile.vault.packer import BackgroundPacker, Published

_LENGTH = struct.Struct(">I")
_PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ: fewer wake-ups per message (the default is 64 KiB)
#: A record's place in the ring, or _INLINE: its content follows the batch on the pipe.
_INLINE = -1
_BATCH, _FLUSH = 0, 1  # parent -> child
_DONE, _FLUSHED, _ERROR = 0, 1, 2  # child -> parent
_PR_SET_PDEATHSIG = 1


def can_fork() -> bool:
    """Whether a child can be forked safely here: Linux (for ``PR_SET_PDEATHSIG``), from
    the main thread (the signal is sent when the forking thread ends) and with no other
    thread alive (one could hold a lock that the child would find held forever)."""
    return (
        sys.platform == "linux"
        and threading.current_thread() is threading.main_thread()
        and threading.active_count() == 1
    )


class PackerProcess:
    """A :class:`BackgroundPacker` in a child process, with the same calls (``add_many``,
    ``flush``, ``abort``); ``index`` is the index file the child adds each pack to."""

    def __init__(
        self,
        root: Path,
        keys: Keys,
        pack_size: int,
        index: Path,
        *,
        batch_bytes: int = 4 << 20,
        batch_count: int = 64,
        in_flight: int = 8,
        ring_batches: int = 3,
    ) -> None:
        self.root = root
        self.batch_bytes = batch_bytes
        self.batch_count = batch_count
        self.in_flight = in_flight
        # As many bytes as the threads hold in their three batches in flight; more batches
        # of small messages may wait (fewer wake-ups of the parent waiting for room).
        self._ring = mmap.mmap(-1, ring_batches * batch_bytes)
        down_r, self._down = os.pipe()
        self._up, up_w = os.pipe()
        for fd in (self._down, self._up):
            _widen(fd)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.close(self._down)
                os.close(self._up)
                code = _serve(parent, down_r, up_w, self._ring, root, keys, pack_size, index)
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        self.pid = pid
        self._status: int | None = None
        self._head = self._tail = 0  # ring: records placed from tail (oldest) to head
        self._batch: list[tuple[bytes, bytes, int, int]] = []
        self._inline: list[bytes] = []
        self._batch_size = 0
        self._sent: deque[tuple[int, int]] = deque()  # (number, ring end) of each batch
        self._number = 0
        self._received = bytearray()
        self._published: list[Published] = []
        self._flushed = False

    # ---- the calls of BackgroundPacker ---------------------------------------------

    def add_many(self, records: list[tuple[bytes, bytes, bytes]]) -> list[Published]:
        """Queue records ``(kind, id, content)``; returns the packs published since."""
        for kind, blob_id, content in records:
            size = len(content)
            if size > self.batch_bytes:
                self._inline.append(content)
                self._batch.append((kind, blob_id, _INLINE, size))
            else:
                at = self._place(size)
                self._ring[at : at + size] = content
                self._batch.append((kind, blob_id, at, size))
            self._batch_size += size
            if len(self._batch) >= self.batch_count or self._batch_size >= self.batch_bytes:
                self._submit()
        self._receive(wait=False)
        while len(self._sent) > self.in_flight:
            self._receive(wait=True)
        return self._take_published()

    def flush(self) -> list[Published]:
        """Seal everything queued and publish the current pack; returns what was published."""
        self._submit()
        self._send(pickle.dumps((_FLUSH,)))
        self._flushed = False
        while not self._flushed:
            self._receive(wait=True)
        return self._take_published()

    def abort(self) -> None:
        """End the child (it removes its unpublished packs) and wait for it."""
        if self._status is None:
            os.close(self._down)  # end of file: the child stops
            os.close(self._up)  # and an answer it is writing fails rather than waits
            self._status = os.waitpid(self.pid, 0)[1]
        self._batch.clear()
        self._inline.clear()

    # ---- the ring ------------------------------------------------------------------

    def _place(self, size: int) -> int:
        """Where in the ring the next record of ``size`` bytes goes (waiting for the child
        to free room if need be)."""
        while True:
            if not self._sent and not self._batch:
                self._head = self._tail = 0
            head, tail, end = self._head, self._tail, len(self._ring)
            used = bool(self._sent or self._batch)
            if head >= tail or not used:
                if size <= end - head:
                    self._head = head + size
                    return head
                if size < tail:  # wrap: the rest of the ring stays unused this turn
                    self._head = size
                    return 0
            elif size < tail - head:  # strictly: head meets tail only when the ring is empty
                self._head = head + size
                return head
            self._submit()  # room is freed only by batches the child has
            self._receive(wait=True)

    def _submit(self) -> None:
        if not self._batch:
            return
        self._number += 1
        message = pickle.dumps((_BATCH, self._number, self._batch), protocol=5)
        self._send(message, *self._inline)
        self._sent.append((self._number, self._head))
        self._batch, self._inline, self._batch_size = [], [], 0

    # ---- the pipes -----------------------------------------------------------------

    def _send(self, message: bytes, *inline: bytes) -> None:
        """Send one message (and the contents that follow it), reading the child's
        answers meanwhile: a child blocked writing to a full pipe would never read this."""
        parts: list[bytes | memoryview] = [_LENGTH.pack(len(message)), message]
        for content in inline:
            parts += [_LENGTH.pack(len(content)), memoryview(content)]
        for part in parts:
            view = memoryview(part)
            while view:
                readable, writable, _ = select.select([self._up], [self._down], [])
                if readable:
                    self._read()
                if writable:
                    try:
                        view = view[os.write(self._down, view) :]
                    except BrokenPipeError:
                        self._died()

    def _receive(self, wait: bool) -> None:
        """Handle the child's answers that have arrived (with ``wait``, at least one)."""
        while True:
            if not self._handle() and (wait or select.select([self._up], [], [], 0)[0]):
                self._read()
                continue
            if not wait:
                return
            wait = False  # one handled: take the rest that are there

    def _read(self) -> None:
        data = os.read(self._up, _PIPE_BYTES)
        if not data:
            self._died()
        self._received += data

    def _handle(self) -> bool:
        """Handle every complete answer received; whether there was one."""
        handled = False
        while len(self._received) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._received)
            if len(self._received) < _LENGTH.size + length:
                break
            answer = pickle.loads(self._received[_LENGTH.size : _LENGTH.size + length])
            del self._received[: _LENGTH.size + length]
            handled = True
            if answer[0] == _ERROR:
                raise answer[1]
            self._published += answer[-1]
            if answer[0] == _DONE:
                number, (first, end) = answer[1], self._sent.popleft()
                assert number == first, "batches answered out of order"
                self._tail = end
            else:
                self._flushed = True
        return handled

    def _take_published(self) -> list[Published]:
        published, self._published = self._published, []
        return published

    def _died(self) -> None:
        """The child ended before it was told to: the answers it sent first, if one
        was its error; otherwise one line saying how it ended."""
        while self._handle():
            pass
        if self._status is None:
            os.close(self._down)
            os.close(self._up)
            self._status = os.waitpid(self.pid, 0)[1]
        how = (
            f"killed by signal {os.WTERMSIG(self._status)}"
            if os.WIFSIGNALED(self._status)
            else f"exit status {os.waitstatus_to_exitcode(self._status)}"
        )
        raise VaultError(
            f"{self.root}: the process writing packs ended unexpectedly ({how}); the packs "
            "published are kept, and indexed at the next run"
        )


def _widen(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (OSError, AttributeError):  # a lower system limit: the default size works too
        pass


# ---- in the child ---------------------------------------------------------------------


def _serve(
    parent: int,
    down: int,
    up: int,
    ring: mmap.mmap,
    root: Path,
    keys: Keys,
    pack_size: int,
    index_path: Path,
) -> int:
    """The child's main loop: pack each batch, answer, until end of file; its exit code."""
    import ctypes
    import gc

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
        return 1  # no signal to rely on, or the parent is already gone: write nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # Everything inherited stays as it is: none of it is collected, and no descriptor the
    # parent's objects own is closed (its number could come back to a pack file).
    gc.freeze()
    from vigile.vault.index import Index

    index: list[Index] = []

    def add_pack(published: Published) -> None:  # on the publishing thread
        if not index:
            index.append(Index(index_path))
        index[0].add_pack(*published)

    packer = BackgroundPacker(root, keys, pack_size, on_published=add_pack, worker=False)
    incoming = os.fdopen(down, "rb")
    view = memoryview(ring)
    failed = False
    try:
        while (message := _read_message(incoming)) is not None:
            request: tuple[Any, ...] = pickle.loads(message)
            if failed:  # the parent has the error; it aborts next
                continue
            try:
                if request[0] == _BATCH:
                    records: list[tuple[bytes, bytes, Buffer]] = []
                    for kind, blob_id, at, size in request[2]:
                        if at == _INLINE:
                            inline = _read_message(incoming)
                            if inline is None:
                                return 1  # the parent is gone mid-message
                            content: bytes | memoryview = inline
                        else:
                            content = view[at : at + size]
                        records.append((kind, blob_id, content))
                    answer: tuple[Any, ...] = (_DONE, request[1], packer.add_batch(records))
                    del records, content
                else:
                    answer = (_FLUSHED, packer.flush())
            except BaseException as e:
                failed = True
                answer = (_ERROR, _portable(e))
            _write_message(up, pickle.dumps(answer, protocol=5))
    finally:
        packer.abort()
        if index:
            index[0].close()
    return 0


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _read_message(incoming: Any) -> bytes | None:
    head = incoming.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    body = incoming.read(length)
    return body if len(body) == length else None


def _write_message(fd: int, message: bytes) -> None:
    view = memoryview(_LENGTH.pack(len(message)) + message)
    while view:
        view = view[os.write(fd, view) :]
