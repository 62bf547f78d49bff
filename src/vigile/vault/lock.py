"""Who may use a vault at the same time: two advisory locks (``flock``) in its folder.

``lock``
    The writer lock. Held exclusively by the one process that changes packs, snapshots or
    the index (``vault backup``, ``vault prune``), from before the vault is first read
    until it is closed; held shared by ``vault prune --dry-run``, which must see a state
    no writer is half-way through (packs indexed whose snapshot is not written yet would
    look unreferenced).
``readers``
    Held shared by every command that only reads (``snapshots``, ``ls``, ``verify``,
    ``restore``) and exclusively by ``vault prune``. A backup only appends (packs and
    snapshots appear by rename, index rows after their pack), so readers run beside it;
    a prune deletes, so it runs with no reader, and no reader starts while it runs.

Nothing waits: a lock that is taken fails at once with one line, and the caller tries
again later. A reader that can neither open nor create ``readers`` (a vault on read-only
media) reads without it: no prune can delete there either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from enum import Enum
from pathlib import Path

from vigile.vault.errors import VaultBusyError, VaultError

WRITER = "lock"
READERS = "readers"


class Access(Enum):
    """What a command does to the vault, and so which locks it holds."""

    READ = "read"
    """Only reads (snapshots, ls, verify, restore): shares ``readers``; backups go on."""
    STEADY = "steady"
    """Only reads, a state no writer is changing (prune --dry-run): shares ``lock``."""
    APPEND = "append"
    """Adds packs, index rows and snapshots (backup): ``lock`` exclusively."""
    DELETE = "delete"
    """Deletes snapshots and packs and rewrites the index (prune): both, exclusively."""

    @property
    def writes(self) -> bool:
        return self in (Access.APPEND, Access.DELETE)


_BUSY = {
    (WRITER, True): "another vigile process is writing this vault (backup or prune)",
    (WRITER, False): "another vigile process is reading it to plan a prune (prune --dry-run)",
    (READERS, True): "a prune is deleting from this vault",
    (READERS, False): (
        "another vigile process is reading this vault (snapshots, ls, verify or restore), "
        "and prune deletes"
    ),
}


class VaultLock:
    """The locks ``access`` needs on the vault at ``root``, held until :meth:`release`.

    Raises :class:`VaultBusyError` (one line, holding nothing) if another process holds
    a lock that conflicts.
    """

    def __init__(self, root: Path, access: Access) -> None:
        self.root = root
        self.access = access
        self._held: list[int] = []
        try:
            if access is Access.STEADY:
                self._take(WRITER, exclusive=False)
            elif access.writes:
                self._take(WRITER, exclusive=True)
            if access is Access.READ:
                self._take(READERS, exclusive=False)
            elif access is Access.DELETE:
                self._take(READERS, exclusive=True)
        except BaseException:
            self.release()
            raise

    def _take(self, name: str, exclusive: bool) -> None:
        fd = _open(self.root / name, exclusive, required=self.access is not Access.READ)
        if fd is None:  # read-only media: see the module docstring
            return
        self._held.append(fd)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            # Who holds it: a shared try is refused only by an exclusive holder; a prune
            # (the one exclusive user of ``readers``) already holds the writer lock, so
            # it finds only readers there.
            held_exclusively = True
            if exclusive:
                held_exclusively = name == WRITER and _held_exclusively(self.root / name)
            raise VaultBusyError(
                f"{self.root}: {_BUSY[name, held_exclusively]}; try again when it has finished"
            ) from None

    def release(self) -> None:
        """Let go of every lock held (closing the file is what releases a ``flock``)."""
        while self._held:
            os.close(self._held.pop())


def _open(path: Path, exclusive: bool, required: bool) -> int | None:
    """A descriptor of the lock file ``path``, created if missing; ``None`` if a reader
    cannot have one. Opened for writing to be locked exclusively: where ``flock`` is
    emulated by byte-range locks (NFS), an exclusive lock needs a writable descriptor."""
    flags = (os.O_RDWR if exclusive else os.O_RDONLY) | os.O_CLOEXEC
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        pass
    try:
        return os.open(path, flags | os.O_CREAT, 0o644)
    except OSError as e:
        if required:
            raise VaultError(f"{path}: cannot create the lock file: {e.strerror}") from None
        return None


def _held_exclusively(path: Path) -> bool:
    """Whether the lock on ``path`` is held exclusively (a shared try succeeds if not)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        return True
    finally:
        os.close(fd)
