"""The console's access to the store: opened for one request, closed after it.

DuckDB lets one process write a file and, while it does, no other process open it,
not even to read. A console that kept the store open would lock ``vigile ingest``,
``vigile hunt`` and ``vigile collect`` out for as long as it runs, so it holds the
file only while it answers a request: read-only for ``GET`` and ``HEAD``, read-write
for the requests that change something (log-in and log-out, the first account,
allowlist entries with their audit rows and ``findings.suppressed_by``).

Requests take the store one at a time (an :class:`asyncio.Lock`): DuckDB refuses to
open a file read-only in a process that has it open read-write, and the reverse.
Opening waits in a worker thread, so the event loop keeps serving static files.
If another process holds the file longer than :data:`REQUEST_WAIT`, the request is
refused with :class:`StoreBusyError` (HTTP 503 with ``Retry-After``).

What each request pays is DuckDB's own start-up (about 17 ms on 2 cores, the same for
``:memory:``); the schema work a read-write open does (about 20 ms) is done once, by
:meth:`StoreAccess.prepare`, and skipped afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from vigile.errors import StoreError
from vigile.store import Store
from vigile.store.duckdb import DuckDBStore

#: Seconds a request waits while another process (an ingest, a hunt) holds the store.
REQUEST_WAIT = 2.0
#: Seconds a refused client is told to wait before trying again (``Retry-After``).
RETRY_AFTER = 5


class StoreBusyError(StoreError):
    """Another process held the store for longer than a request may wait."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreAccess:
    """Opens the store at ``path`` for one request at a time.

    Args:
        path: the DuckDB file (``:memory:`` gives an empty store on every open, which
            only suits building the OpenAPI schema).
        wait: seconds a request waits for another process to let go of the file.
        retry_after: seconds a refused client is told to wait.
    """

    def __init__(
        self, path: str | Path, *, wait: float = REQUEST_WAIT, retry_after: int = RETRY_AFTER
    ) -> None:
        self.path = str(path)
        self.wait = wait
        self.retry_after = retry_after
        self._lock: asyncio.Lock | None = None
        self._prepared = False

    def open(self, *, write: bool, wait: float | None = None) -> DuckDBStore:
        """Open the store now (blocking up to ``wait`` s, default :attr:`wait`); the caller
        closes it.

        Raises:
            StoreBusyError: another process held the file for the whole wait, or it
                could not be opened at all.
        """
        read_only = not write and self._prepared and self.path != ":memory:"
        try:
            store = DuckDBStore(
                self.path,
                read_only=read_only,
                wait=self.wait if wait is None else wait,
                prepare=not self._prepared,
            )
        except StoreError as e:
            raise StoreBusyError(
                f"{e}; the console answers again once it is free", self.retry_after
            ) from None
        self._prepared = True
        return store

    def prepare(self) -> None:
        """Open read-write once, bringing the file to the current schema, and close it."""
        self.open(write=True).close()

    @asynccontextmanager
    async def request(self, *, write: bool) -> AsyncIterator[Store]:
        """The store for one request, taken after any other request has let go of it.

        The wait for another process counts from the request's arrival: requests queued
        behind one that waited in vain try once and are refused at once, instead of
        waiting in turn.
        """
        deadline = time.monotonic() + self.wait
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            left = max(0.0, deadline - time.monotonic())
            store = await run_in_threadpool(self.open, write=write, wait=left)
            try:
                yield store
            finally:
                store.close()
