"""The local index: which pack holds which record.

A SQLite file inside the vault (stdlib ``sqlite3``): memory stays bounded whatever the
vault size, because look-ups go to disk. The index is a cache of what the packs say; every
row can be rebuilt by scanning pack headers (:meth:`Vault.reindex`), so losing it loses
nothing. Rows are inserted only after their pack is published, in one transaction per pack.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from vigile.vault.pack import RecordRef

_SCHEMA = """
CREATE TABLE IF NOT EXISTS packs (name TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY, kind BLOB NOT NULL, pack TEXT NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_pack ON blobs (pack);
"""


class Index:
    """Look-ups and inserts over ``index.sqlite``.

    During a backup, :meth:`add_pack` runs on the thread that publishes packs
    (``packer.py``) while the reading thread looks records up: the connection is shared
    by the two threads, and :meth:`lookup`, :meth:`existing`, :meth:`has` and
    :meth:`add_pack` take turns on it under a lock. The other methods are for when no
    backup writes (recovery at open, verify, prune).
    """

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)  # shared: see the lock
        self._lock = threading.Lock()
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def lookup(self, blob_id: bytes) -> RecordRef | None:
        with self._lock:
            row = self.db.execute(
                "SELECT kind, pack, offset, length FROM blobs WHERE id = ?", (blob_id,)
            ).fetchone()
        return None if row is None else RecordRef(row[0], blob_id, row[1], row[2], row[3])

    def existing(self, blob_ids: list[bytes]) -> set[bytes]:
        """Which of ``blob_ids`` are indexed: one query for many (at most 500 per query)."""
        found: set[bytes] = set()
        for start in range(0, len(blob_ids), 500):
            chunk = blob_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self.db.execute(f"SELECT id FROM blobs WHERE id IN ({marks})", chunk)
                found.update(row[0] for row in rows)
        return found

    def has(self, blob_id: bytes) -> bool:
        with self._lock:
            row = self.db.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return row is not None

    def add_pack(
        self, name: str, size: int, records: Iterable[RecordRef], *, move: bool = False
    ) -> None:
        """Record a published pack and its records in one transaction (idempotent).

        A record already indexed keeps its old location, unless ``move`` (a rewritten
        pack taking over records from the pack it replaces).
        """
        verb = "REPLACE" if move else "IGNORE"
        with self._lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO packs VALUES (?, ?)", (name, size))
            self.db.executemany(
                f"INSERT OR {verb} INTO blobs VALUES (?, ?, ?, ?, ?)",
                ((r.blob_id, r.kind, r.pack, r.offset, r.length) for r in records),
            )

    def drop_pack(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM blobs WHERE pack = ?", (name,))
            self.db.execute("DELETE FROM packs WHERE name = ?", (name,))

    def packs(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, size FROM packs").fetchall())

    def records(self, pack: str | None = None) -> Iterator[RecordRef]:
        """Every record, in pack and offset order (reads stay sequential)."""
        sql = "SELECT kind, id, pack, offset, length FROM blobs"
        args: tuple[str, ...] = ()
        if pack is not None:
            sql += " WHERE pack = ?"
            args = (pack,)
        for kind, blob_id, name, offset, length in self.db.execute(
            sql + " ORDER BY pack, offset", args
        ):
            yield RecordRef(kind, blob_id, name, offset, length)

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM blobs").fetchone()[0])
