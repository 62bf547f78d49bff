"""Where mail comes from: the source interface every mail protocol implements.

IMAP (``imap.py``) is the first implementation; Exchange Web Services and Microsoft Graph
sources plug in behind the same :class:`Source` protocol.

Contract, per method (every implementation must hold to it):

* Every method is **read-only on the server** (IMAP: ``EXAMINE`` and ``BODY.PEEK``; no
  flag, no ``\\Seen``, no expunge) and therefore **idempotent**: calling it twice, or again
  after a failure, is safe and returns the same answer if the mailbox did not change.
* ``folders`` lists selectable folders, in a stable order, names as the user sees them.
* ``status`` is one round trip per folder and must be cheap: the backup calls it for every
  folder on every run and skips folders whose markers did not move. ``statuses`` is
  ``status`` of several folders, in the order given, in one round trip where the protocol
  allows (IMAP pipelines the commands); the backup asks it for every folder at the start,
  so a folder's markers always date from before its messages are listed.
* ``metadata`` returns flags, size and internal date; with ``changed_since`` only messages
  whose modification sequence is greater (new ones included). Sources without modification
  sequences return ``None`` for ``FolderStatus.highestmodseq`` and are never given one.
* ``fetch`` takes messages as ``metadata`` listed them and yields each with its raw bytes
  (exact), in the given order, skipping messages that no longer exist; its memory is
  bounded by one batch, not by the folder. Flags that change in between are caught by
  the next run, whose markers date from before the listing.
* ``fetch_folder`` is ``metadata`` and ``fetch`` of every message in one pass, for a
  folder of which nothing is stored yet (a first run, a new UIDVALIDITY): messages come
  in ascending UID order, and only those with a UID above ``after`` (so a caller that
  lost the connection resumes where it was). ``next_folder`` is a hint: the folder whose
  ``fetch_folder`` (from UID 0) the caller makes next, with no other call in between and
  once this one's messages have all been read; a source may start asking for it early
  (IMAP pipelines its ``EXAMINE`` and ``FETCH`` behind this folder's). A source must give
  the same answers whether the hint is given, wrong or ignored (a wrong one may cost it a
  reconnection).
* Errors: :class:`SourceAuthError` is **permanent** (never retried); a dropped or refused
  connection is :class:`SourceConnectionError`, **transient**: :class:`RetryingSource`
  reconnects with exponential backoff and re-issues the call. Anything else is permanent.
* An interrupted run leaves the server exactly as it was; what the vault keeps of it is
  the vault's business (see ``repo.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar

from vigile.vault.errors import SourceConnectionError, SourceError


@dataclass(frozen=True)
class FolderStatus:
    """A folder's sync markers; ``highestmodseq`` is ``None`` without CONDSTORE."""

    name: str
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None


class MessageMeta(NamedTuple):
    """What a message carries besides its bytes.

    A named tuple rather than a frozen dataclass, as :class:`FetchedMessage` and the
    snapshot's ``MessageEntry``: a full backup makes one of each per message, and a
    tuple is made three times faster (docs/benchmarks.md).
    """

    uid: int
    size: int
    internaldate: datetime
    flags: tuple[str, ...]


class FetchedMessage(NamedTuple):
    meta: MessageMeta
    raw: bytes


class Source(Protocol):
    """One mail account, read-only. See the module docstring for the contract."""

    account: str

    def folders(self) -> list[str]: ...

    def status(self, folder: str) -> FolderStatus: ...

    def statuses(self, folders: Sequence[str]) -> list[FolderStatus]: ...

    def uids(self, folder: str) -> list[int]: ...

    def metadata(self, folder: str, changed_since: int | None = None) -> list[MessageMeta]: ...

    def fetch(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]: ...

    def fetch_folder(
        self, folder: str, after: int = 0, next_folder: str | None = None
    ) -> Iterator[FetchedMessage]: ...

    def close(self) -> None: ...


T = TypeVar("T")


class RetryingSource:
    """Wraps a source factory: reconnect with exponential backoff on transient errors.

    Retry is a wrapper rather than a flag of each source (as restic's ``backend_retry``),
    so every source gets the same policy. ``sleep`` is injectable so tests need not wait.
    """

    def __init__(
        self,
        connect: Callable[[], Source],
        *,
        attempts: int = 5,
        base_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self.attempts = attempts
        self.base_delay = base_delay
        self._sleep = sleep
        self.retries = 0
        self._source: Source | None = None
        self.account = self._call(lambda s: s.account)

    def _current(self) -> Source:
        if self._source is None:
            self._source = self._connect()
        return self._source

    def _drop(self) -> None:
        if self._source is not None:
            # The connection is already broken; closing it is best effort.
            with contextlib.suppress(Exception):
                self._source.close()
            self._source = None

    def _call(self, op: Callable[[Source], T]) -> T:
        last: SourceConnectionError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.retries += 1
                self._sleep(self.base_delay * 2 ** (attempt - 1))
            try:
                return op(self._current())
            except SourceConnectionError as e:
                last = e
                self._drop()
        raise SourceError(f"{last} (gave up after {self.attempts} attempts)")

    def folders(self) -> list[str]:
        return self._call(lambda s: s.folders())

    def status(self, folder: str) -> FolderStatus:
        return self._call(lambda s: s.status(folder))

    def statuses(self, folders: Sequence[str]) -> list[FolderStatus]:
        return self._call(lambda s: s.statuses(folders))

    def uids(self, folder: str) -> list[int]:
        return self._call(lambda s: s.uids(folder))

    def metadata(self, folder: str, changed_since: int | None = None) -> list[MessageMeta]:
        return self._call(lambda s: s.metadata(folder, changed_since))

    def fetch(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        """Yield every message once; after a reconnect, resume with the ones not yet seen."""
        remaining = list(metas)
        failures = 0
        while remaining:
            done = 0
            try:
                for message in self._current().fetch(folder, remaining):
                    yield message
                    while remaining[done].uid != message.meta.uid:
                        done += 1  # skipped: expunged since the listing
                    done += 1
                return
            except SourceConnectionError as e:
                remaining = remaining[done:]
                failures = self._back_off(e, failures)

    def fetch_folder(
        self, folder: str, after: int = 0, next_folder: str | None = None
    ) -> Iterator[FetchedMessage]:
        """Every message once; after a reconnect, resume above the last UID delivered."""
        failures = 0
        while True:
            try:
                for message in self._current().fetch_folder(folder, after, next_folder):
                    yield message
                    after = message.meta.uid
                return
            except SourceConnectionError as e:
                failures = self._back_off(e, failures)

    def _back_off(self, error: SourceConnectionError, failures: int) -> int:
        """After a broken stream: drop the connection, give up after ``attempts`` failures,
        else wait (doubling each time) and return the new failure count."""
        self._drop()
        failures += 1
        if failures >= self.attempts:
            raise SourceError(f"{error} (gave up after {self.attempts} attempts)") from None
        self.retries += 1
        self._sleep(self.base_delay * 2 ** (failures - 1))
        return failures

    def close(self) -> None:
        self._drop()
