"""Retention: forget old snapshots, then reclaim the space only they used.

This is the one operation that deletes, and it runs only when asked (``vault prune``).
Order, so that a crash at any point loses nothing still referenced:

1. delete the snapshot files outside the retention window (the newest snapshot of each
   account is always kept);
2. mark every record the remaining snapshots reference (in a temporary SQLite table, so
   memory stays bounded);
3. for each pack: if all its records are marked, keep it; if none (or no index record
   points to it), delete it; otherwise copy the marked records, still sealed, into a new
   pack, publish and index it, and only then drop the old pack. A frame (pack.py) whose
   members are all marked is copied sealed too; one with some members unmarked is
   opened, and its marked members are framed and sealed anew into the new pack (a
   damaged frame stops the prune there, with the vault as it was for that pack: run
   ``vault verify``).

Both functions refuse a vault not opened for it (:mod:`vigile.vault.lock`): a real run
needs ``Access.DELETE`` (the writer lock and no reader, held from before the first
snapshot is listed to the last pack deleted), a dry run ``Access.STEADY`` or ``DELETE``
(no writer half-way: records of a backup whose snapshot is not written yet would count
as unreferenced).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from vigile.vault.errors import VaultDamagedError
from vigile.vault.lock import Access
from vigile.vault.pack import (
    MAGIC,
    RECORD_HEAD,
    PackWriter,
    RecordRef,
    compressor,
    frame_units,
    pack_path,
    parse_table,
    read_record,
)

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
    as already deleted and the figures say what a real run would free (frames to re-seal
    are re-framed and compressed to know their size, and not written).
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
        stats.packs_rewritten += kept > 0
        stats.packs_deleted += kept == 0
        if dry_run:
            if kept:
                size -= len(MAGIC) + sum(RECORD_HEAD + _size(p) for p in _kept(vault, name))
            stats.bytes_freed += size
            continue
        if kept:
            stats.bytes_freed += size - _rewrite(vault, name)
        else:
            stats.bytes_freed += size
        vault.index.drop_pack(name)
        pack_path(vault.root, name).unlink()
    return stats


def _rewrite(vault: Vault, name: str) -> int:
    """Write what pack ``name`` keeps into a new pack, publish and index it; its size."""
    writer = PackWriter(vault.root, vault.keys.pack_hash)
    try:
        for part in _kept(vault, name):
            if isinstance(part, RecordRef):
                part = _read(vault, part)
            writer.add(*part)
        new_name, records = writer.finish()
    except BaseException:
        writer.abort()  # the old pack is untouched: nothing is lost
        raise
    vault.index.add_pack(new_name, writer.size, records, move=True)
    return writer.size


def _read(vault: Vault, ref: RecordRef) -> tuple[bytes, bytes, bytes]:
    """The record (or frame) at ``ref``, sealed; a short or missing one is damage."""
    try:
        return read_record(pack_path(vault.root, ref.pack), ref.offset, ref.length)
    except (OSError, ValueError) as e:
        where = f"pack {ref.pack[:16]} byte {ref.offset}"
        raise VaultDamagedError(f"{where}: {e}; run `vigile vault verify`") from None


def _kept(vault: Vault, pack: str) -> Iterator[RecordRef | tuple[bytes, bytes, bytes]]:
    """What the rewritten pack holds, in order: records and whole frames to copy sealed
    (the :class:`RecordRef` of each), and frames sealed anew ``(kind, id, sealed)``."""
    db = vault.index.db
    for _, group in itertools.groupby(vault.index.records(pack), key=lambda r: r.whole):
        refs = list(group)
        kept = [
            r
            for r in refs
            if db.execute("SELECT 1 FROM keep WHERE id = ?", (r.blob_id,)).fetchone()
        ]
        if not kept:
            continue
        if refs[0].part_offset is None or len(kept) == _members(vault, refs[0]):
            yield refs[0]
            continue
        yield from reframe(vault, [(r.kind, r.blob_id, vault.read(r)) for r in kept])


def reframe(
    vault: Vault, records: list[tuple[bytes, bytes, bytes]]
) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Records ``(kind, id, content)`` framed and sealed: ``(F, frame id, sealed)`` for
    :meth:`PackWriter.add`."""
    zc = compressor()
    for kind, frame_id, table, content in frame_units(records, vault.keys.blob_id):
        yield kind, frame_id, table + vault.keys.seal(zc.compress(content), kind + frame_id + table)


def _members(vault: Vault, ref: RecordRef) -> int:
    """How many members the frame at ``ref`` lists."""
    _, _, body = _read(vault, ref)
    try:
        return len(parse_table(body)[0])
    except ValueError as e:
        where = f"pack {ref.pack[:16]} byte {ref.offset}"
        raise VaultDamagedError(f"{where}: {e}; run `vigile vault verify`") from None


def _size(part: RecordRef | tuple[bytes, bytes, bytes]) -> int:
    return part.length if isinstance(part, RecordRef) else len(part[2])
