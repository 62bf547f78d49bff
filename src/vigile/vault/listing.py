"""What the vault holds, as rows: snapshots, the folders of one, the messages of a folder.

One reader for every listing: ``vigile vault snapshots`` and ``vigile vault ls`` print
these rows, and the console's Backups page shows them; both search messages by sender
and subject with :class:`MessageQuery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vigile.vault.headers import display
from vigile.vault.snapshot import MessageEntry

if TYPE_CHECKING:
    from vigile.vault.repo import Vault
    from vigile.vault.snapshot import FolderRef, Snapshot

SNAPSHOT_COLUMNS = ["snapshot", "account", "time", "folders", "messages", "fetched", "stored"]
FOLDER_COLUMNS = ["folder", "messages", "uidvalidity", "snapshot"]
#: A message's columns in a table; JSON and CSV add its Message-ID (MESSAGE_FIELDS).
MESSAGE_COLUMNS = ["folder", "uid", "date", "from", "subject", "size", "flags", "id"]
MESSAGE_FIELDS = [*MESSAGE_COLUMNS, "message_id"]
#: Hex digits of a record id shown in listings (64 bits), which ``vault restore
#: --message`` takes.
MESSAGE_ID_CHARS = 16


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


@dataclass(frozen=True)
class MessageQuery:
    """Which messages a listing keeps: each given text must appear, in any case, in the
    decoded header it names (``text``: in the sender or the subject).

    >>> from datetime import datetime, UTC
    >>> m = MessageEntry(1, b"", 1, datetime(2026, 1, 1, tzinfo=UTC), (),
    ...                  "=?utf-8?q?Jos=C3=A9?= <j@example.org>", "Invoice 42")
    >>> [MessageQuery(*q).matches(m) for q in (("josé",), ("", "", "INVOICE"), ("", "bob"))]
    [True, True, False]
    """

    text: str = ""
    sender: str = ""
    subject: str = ""

    def __bool__(self) -> bool:
        return bool(self.text or self.sender or self.subject)

    def matches(self, m: MessageEntry) -> bool:
        sender, subject = display(m.sender).casefold(), display(m.subject).casefold()
        text = self.text.casefold()
        return (
            (not text or text in sender or text in subject)
            and self.sender.casefold() in sender
            and self.subject.casefold() in subject
        )


def find_messages(
    vault: Vault, ref: FolderRef, query: MessageQuery | None = None
) -> list[MessageEntry]:
    """The messages (``MessageEntry``) of one folder of a snapshot, by UID; with ``query``,
    only those it matches.

    The vault keeps each message's internal date, size, flags and raw sender, subject and
    Message-ID in the folder's tree: a listing or a search never opens a message.
    """
    ordered = sorted(vault.get_tree(ref.tree).messages.values(), key=lambda m: m.uid)
    return [m for m in ordered if query.matches(m)] if query else ordered


def message_row(folder: str, m: MessageEntry) -> dict[str, Any]:
    """One message as listings show it: sender and subject decoded, the id restore takes."""
    return {
        "folder": folder,
        "uid": m.uid,
        "date": m.internaldate,
        "from": display(m.sender),
        "subject": display(m.subject),
        "size": m.size,
        "flags": " ".join(m.flags),
        "id": m.blob_id.hex()[:MESSAGE_ID_CHARS],
        "message_id": m.message_id,
    }


def message_rows(
    vault: Vault,
    ref: FolderRef,
    start: int = 0,
    stop: int | None = None,
    query: MessageQuery | None = None,
) -> list[dict[str, Any]]:
    """:func:`message_row` of the messages of one folder of a snapshot (matching
    ``query``), by UID, only those from ``start`` to ``stop`` in that order (a page)."""
    return [message_row(ref.name, m) for m in find_messages(vault, ref, query)[start:stop]]
