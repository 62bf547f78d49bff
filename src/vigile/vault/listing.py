"""What the vault holds, as rows: snapshots, the folders of one, the messages of a folder.

One reader for every listing: ``vigile vault snapshots`` and ``vigile vault ls`` print
these rows, and the console's Backups page shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigile.vault.repo import Vault
    from vigile.vault.snapshot import FolderRef, Snapshot

SNAPSHOT_COLUMNS = ["snapshot", "account", "time", "folders", "messages", "fetched", "stored"]
FOLDER_COLUMNS = ["folder", "messages", "uidvalidity", "snapshot"]
MESSAGE_COLUMNS = ["folder", "uid", "date", "size", "flags", "id"]


def snapshot_row(snap: Snapshot) -> dict[str, Any]:
    """A snapshot: when, which account, how many folders and messages, what its run fetched.

    ``fetched`` and ``stored`` are the run's counts: messages downloaded, and of those
    the ones the vault did not hold yet.
    """
    return {
        "snapshot": snap.name,
        "account": snap.account,
        "time": snap.time,
        "folders": len(snap.folders),
        "messages": sum(f.count for f in snap.folders),
        "fetched": snap.stats.get("fetched"),
        "stored": snap.stats.get("stored"),
    }


def folder_rows(snap: Snapshot) -> list[dict[str, Any]]:
    """The folders of a snapshot, in the order the backup found them."""
    return [
        {"folder": f.name, "messages": f.count, "uidvalidity": f.uidvalidity, "snapshot": snap.name}
        for f in snap.folders
    ]


def message_rows(
    vault: Vault, ref: FolderRef, start: int = 0, stop: int | None = None
) -> list[dict[str, Any]]:
    """The messages of one folder of a snapshot, by UID: date, size, flags, record id;
    only those from ``start`` to ``stop`` in that order (a page of a large folder).

    The vault keeps each message's internal date, size and flags in the folder's tree;
    headers (sender, subject) are inside the sealed message and are not read for a listing.
    """
    tree = vault.get_tree(ref.tree)
    ordered = sorted(tree.messages.values(), key=lambda m: m.uid)[start:stop]
    return [
        {
            "folder": ref.name,
            "uid": m.uid,
            "date": m.internaldate,
            "size": m.size,
            "flags": " ".join(m.flags),
            "id": m.blob_id.hex()[:16],
        }
        for m in ordered
    ]
