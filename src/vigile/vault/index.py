"""The local index: which pack holds which record.

A SQLite file inside the vault (stdlib ``sqlite3``): memory stays bounded whatever the
vault size, because look-ups go to disk. The index is a cache of what the packs say; every
row can be rebuilt by scanning pack headers (:meth:`Vault.reindex`), so losing it loses
nothing. Rows are inserted only after their pack is published, in one transaction per pack.

Records refer to their pack by the pack's row number rather than by its 64-character
name (schema version 2, ``PRAGMA user_version``): a record's row is a third of the size,
and a full backup of 20,000 messages spends about 0.03 CPU-s less inserting them
(docs/benchmarks.md). Since schema version 3 a row also says where a member of a frame
(pack.py) sits in its frame's content (``part_offset``, ``part_length``; NULL for a
record of its own, which is what every row of an earlier index is); the row's
``offset`` and ``length`` are then its frame's. An index of version 1 or 2 is converted
in place, in one transaction, the first time it is opened.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from vigile.vault.errors import VaultError
from vigile.vault.pack import PackedRecord, RecordRef

SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE packs (n INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL);
CREATE TABLE blobs (
    id BLOB PRIMARY KEY, kind BLOB NOT NULL, pack INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, part_offset INTEGER, part_length INTEGER
) WITHOUT ROWID;
CREATE INDEX blobs_pack ON blobs (pack);
"""
#: Version 1 named each record's pack in full; its rows are copied into version 2's tables.
_FROM_VERSION_1 = (
    """
ALTER TABLE packs RENAME TO packs_v1;
ALTER TABLE blobs RENAME TO blobs_v1;
DROP INDEX blobs_pack;
"""
    + _SCHEMA
    + """
INSERT INTO packs (name, size) SELECT name, size FROM packs_v1 ORDER BY name;
INSERT INTO blobs (id, kind, pack, offset, length) SELECT b.id, b.kind, p.n, b.offset, b.length
    FROM blobs_v1 AS b JOIN packs AS p ON p.name = b.pack;
DROP TABLE blobs_v1;
DROP TABLE packs_v1;
"""
)
#: Version 2 had no place in a frame: its records are each a record of their own (NULL).
_FROM_VERSION_2 = """
ALTER TABLE blobs ADD COLUMN part_offset INTEGER;
ALTER TABLE blobs ADD COLUMN part_length INTEGER;
"""
#: A record and the name of its pack (``records``, ``lookup``).
_RECORDS = (
    "SELECT blobs.kind, blobs.id, packs.name, blobs.offset, blobs.length, "
    "blobs.part_offset, blobs.part_length FROM blobs JOIN packs ON packs.n = blobs.pack"
)
#: A published pack's records as :class:`vigile.vault.pack.PackWriter` lists them.
PackRows = Iterable[PackedRecord]


class Index:
    """Look-ups and inserts over ``index.sqlite``.

    During a backup, :meth:`add_pack` runs on the thread that publishes packs
    (``packer.py``) while the reading thread looks records up. By default the two share
    one connection and take turns on it under a lock. A writer calls
    :meth:`read_concurrently` first: the file is then in write-ahead-log mode and the
    look-ups (:meth:`lookup`, :meth:`existing`, :meth:`has`) go through a second
    connection of their own, which reads the last committed state without waiting for
    the pack being indexed (with one shared connection, the reading thread waited
    0.10-0.12 s of a 20,000-message backup for the lock, docs/benchmarks.md). A look-up
    sees a pack's rows once :meth:`add_pack` has returned (each query is its own read
    transaction). The other methods use the first connection: the writer's own at open
    (recovery) and in prune, which holds the vault's writer lock, and readers' (verify),
    whose process does not write (:mod:`vigile.vault.lock`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False)  # shared: see the lock
        self._lock = threading.Lock()
        self._reads = self.db  # the look-ups' connection (see read_concurrently)
        self._reads_lock = self._lock
        try:
            self._prepare(path)
        except sqlite3.Error as e:  # a damaged file, or an earlier index on read-only media
            self.db.close()
            raise VaultError(
                f"{path}: cannot prepare the index: {e} (it is a cache: removed, it is "
                "rebuilt from the packs by the next backup)"
            ) from None
        except BaseException:
            self.db.close()
            raise

    def _prepare(self, path: Path) -> None:
        """Create the tables, or convert an earlier index, in one transaction; a second
        process opening the same index meanwhile waits, then finds it done."""
        if self.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        default, self.db.isolation_level = self.db.isolation_level, None  # spelled out below
        try:
            self.db.execute("BEGIN IMMEDIATE")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
            if version > SCHEMA_VERSION:
                raise VaultError(
                    f"{path}: index of a newer vigile (version {version}); upgrade vigile, or "
                    "remove the file and run a backup to rebuild it from the packs"
                )
            if version < SCHEMA_VERSION:
                script = _SCHEMA
                if "blobs" in tables:
                    script = _FROM_VERSION_2 if version == 2 else _FROM_VERSION_1
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        finally:
            self.db.isolation_level = default

    def read_concurrently(self) -> None:
        """Look records up on a connection of their own, in write-ahead-log mode (see the
        class docstring); :meth:`close` puts the file back in rollback-journal mode, so
        that an index left by a finished run opens as before, read-only media included.

        Commits stay as durable as before (``synchronous`` is left at FULL: the log is
        fsynced at each commit), and still come after the pack's own fsync and rename.
        """
        if self._reads is not self.db:
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        self._reads = sqlite3.connect(self.path, check_same_thread=False)
        self._reads_lock = threading.Lock()  # its own: never held while a pack is indexed

    def close(self) -> None:
        if self._reads is not self.db:
            self._reads.close()
            self._reads = self.db
            # Back to the rollback journal (the log is checkpointed into the file first);
            # if another process has the file open, the next writer's close does it.
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.close()

    def lookup(self, blob_id: bytes) -> RecordRef | None:
        with self._reads_lock:
            row = self._reads.execute(_RECORDS + " WHERE blobs.id = ?", (blob_id,)).fetchone()
        return None if row is None else RecordRef(*row)

    def existing(self, blob_ids: list[bytes]) -> set[bytes]:
        """Which of ``blob_ids`` are indexed: one query for many (at most 500 per query)."""
        found: set[bytes] = set()
        for start in range(0, len(blob_ids), 500):
            chunk = blob_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._reads_lock:
                rows = self._reads.execute(f"SELECT id FROM blobs WHERE id IN ({marks})", chunk)
                found.update(row[0] for row in rows)
        return found

    def has(self, blob_id: bytes) -> bool:
        with self._reads_lock:
            row = self._reads.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return row is not None

    def add_pack(self, name: str, size: int, records: PackRows, *, move: bool = False) -> None:
        """Record a published pack and its records (:data:`PackedRecord`) in one
        transaction (idempotent).

        A record already indexed keeps its old location, unless ``move`` (a rewritten
        pack taking over records from the pack it replaces).
        """
        verb = "REPLACE" if move else "IGNORE"
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO packs (name, size) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET size = excluded.size",
                (name, size),
            )
            n = int(self.db.execute("SELECT n FROM packs WHERE name = ?", (name,)).fetchone()[0])
            # The pack's number is written into the statement (an integer from the table
            # above) so that the rows go in as the pack writer lists them, with no tuple
            # built per row in Python.
            self.db.executemany(
                f"INSERT OR {verb} INTO blobs "
                "(kind, id, pack, offset, length, part_offset, part_length) "
                f"VALUES (?, ?, {n}, ?, ?, ?, ?)",
                records,
            )

    def pack_number(self, name: str) -> int | None:
        """The row number records of pack ``name`` refer to it by (None if not indexed)."""
        row = self.db.execute("SELECT n FROM packs WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def drop_pack(self, name: str) -> None:
        with self.db:
            self.db.execute(
                "DELETE FROM blobs WHERE pack = (SELECT n FROM packs WHERE name = ?)", (name,)
            )
            self.db.execute("DELETE FROM packs WHERE name = ?", (name,))

    def packs(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, size FROM packs").fetchall())

    def records(self, pack: str | None = None) -> Iterator[RecordRef]:
        """Every record, in pack and offset order (reads stay sequential; a frame's members
        together, in their order in the frame)."""
        where = "" if pack is None else " WHERE packs.name = ?"
        args = () if pack is None else (pack,)
        order = " ORDER BY packs.name, blobs.offset, blobs.part_offset"
        for row in self.db.execute(_RECORDS + where + order, args):
            yield RecordRef(*row)

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM blobs").fetchone()[0])
