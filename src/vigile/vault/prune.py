"""Retention: forget old snapshots, then reclaim the space only they used.

This is the one operation that deletes, and it runs only when asked (``vault prune``).
Order, so that a crash at any point loses nothing still referenced:

1. delete the snapshot files outside the retention window (the newest snapshot of each
   account is always kept);
2. mark every record the remaining snapshots reference (in a temporary SQLite table, so
   memory stays bounded);
3. for each pack: if all its records are marked, keep it; if none (or no index record
   points to it), delete it; otherwise copy the marked records, still sealed, into a new
   pack, publish and index it, and only then drop the old pack.

Both functions refuse a vault not opened for it (:mod:`vigile.vault.lock`): a real run
needs ``Access.DELETE`` (the writer lock and no reader, held from before the first
snapshot is listed to the last pack deleted), a dry run ``Access.STEADY`` or ``DELETE``
(no writer half-way: records of a backup whose snapshot is not written yet would count
as unreferenced).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from vigile.vault.lock import Access
from vigile.vault.pack import RECORD_HEAD, PackWriter, pack_path, read_record

if TYPE_CHECKING:  # imported by the CLI at start-up: keep it light
    from vigile.vault.repo import Vault


@dataclass
class PruneStats:
    snapshots_deleted: int = 0
    packs_deleted: int = 0
    packs_rewritten: int = 0
    records_dropped: int = 0
    bytes_freed: int = 0


def forget(
    vault: Vault, keep_within: timedelta, now: datetime | None = None, dry_run: bool = False
) -> list[str]:
    """Delete snapshots older than ``keep_within``, keeping each account's newest one."""
    _require(vault, dry_run)
    cutoff = (now or datetime.now(UTC)) - keep_within
    newest = {}
    snapshots = vault.snapshots()
    for snap in snapshots:
        newest[snap.account] = snap.name
    doomed = [s.name for s in snapshots if s.time < cutoff and newest[s.account] != s.name]
    if not dry_run:
        for name in doomed:
            vault.delete_snapshot(name)
    return doomed


def _require(vault: Vault, dry_run: bool) -> None:
    if dry_run:
        vault.require(Access.STEADY, Access.DELETE, doing="prune --dry-run")
    else:
        vault.require(Access.DELETE, doing="prune")


def _mark_referenced(vault: Vault, forgotten: set[str]) -> None:
    db = vault.index.db
    db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (id BLOB PRIMARY KEY) WITHOUT ROWID")
    db.execute("DELETE FROM keep")
    for snap in vault.snapshots():
        if snap.name in forgotten:
            continue
        for ref in snap.folders:
            db.execute("INSERT OR IGNORE INTO keep VALUES (?)", (ref.tree,))
            tree = vault.get_tree(ref.tree)
            db.executemany(
                "INSERT OR IGNORE INTO keep VALUES (?)",
                ((m.blob_id,) for m in tree.messages.values()),
            )


def prune(vault: Vault, forgotten: set[str] | None = None, dry_run: bool = False) -> PruneStats:
    """Remove records no snapshot references; see the module docstring for the order.

    With ``dry_run`` nothing is written: the snapshots named in ``forgotten`` are treated
    as already deleted and the figures say what a real run would free.
    """
    _require(vault, dry_run)
    stats = PruneStats()
    _mark_referenced(vault, forgotten or set())
    db = vault.index.db
    for name, size in sorted(vault.index.packs().items()):
        number = vault.index.pack_number(name)
        total, kept = db.execute(
            "SELECT count(*), count(keep.id) FROM blobs LEFT JOIN keep ON keep.id = blobs.id "
            "WHERE pack = ?",
            (number,),
        ).fetchone()
        if total and kept == total:
            continue
        # A pack no record points to (total 0) holds only copies of records indexed in
        # another pack: a prune killed after publishing a rewritten pack but before
        # indexing it leaves one, which the next opening indexes without taking any
        # record over. It is deleted like a pack whose records are all unreferenced.
        stats.records_dropped += total - kept
        if dry_run:
            stats.packs_rewritten += kept > 0
            stats.packs_deleted += kept == 0
            stats.bytes_freed += _dropped_bytes(vault, number) if kept else size
            continue
        if kept:
            writer = PackWriter(vault.root, vault.keys.pack_hash)
            for ref in vault.index.records(name):
                if db.execute("SELECT 1 FROM keep WHERE id = ?", (ref.blob_id,)).fetchone():
                    path = pack_path(vault.root, name)
                    kind, blob_id, sealed = read_record(path, ref.offset, ref.length)
                    writer.add(kind, blob_id, sealed)
            new_name, records = writer.finish()
            vault.index.add_pack(new_name, writer.size, records, move=True)
            stats.packs_rewritten += 1
            stats.bytes_freed += size - writer.size
        else:
            stats.packs_deleted += 1
            stats.bytes_freed += size
        vault.index.drop_pack(name)
        pack_path(vault.root, name).unlink()
    return stats


def _dropped_bytes(vault: Vault, pack: int | None) -> int:
    row = vault.index.db.execute(
        "SELECT coalesce(sum(length), 0) + count(*) * ? FROM blobs "
        "WHERE pack = ? AND id NOT IN (SELECT id FROM keep)",
        (RECORD_HEAD, pack),
    ).fetchone()
    return int(row[0])
