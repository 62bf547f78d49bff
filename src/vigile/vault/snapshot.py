"""What a backup run records: snapshots, folder trees and message entries.

A *snapshot* is the state of one account at one time: for each folder its UIDVALIDITY,
UIDNEXT, HIGHESTMODSEQ and the id of its *tree*. A tree lists every message of the folder
(UID, message id, size, internal date, flags, and the raw From, Subject and Message-ID
header values, :mod:`vigile.vault.headers`) and is itself stored as a record in the packs,
so a folder that did not change between runs points at the same tree and costs nothing.
Snapshots are never rewritten; only ``vault prune`` deletes them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

#: How snapshot names begin: the second the snapshot was taken, in UTC.
STAMP = "%Y%m%dT%H%M%S"


class MessageEntry(NamedTuple):
    """One message in a folder at snapshot time (a named tuple: see ``MessageMeta``).

    ``sender``, ``subject`` and ``message_id`` are the raw header values
    (:func:`vigile.vault.headers.header_fields`); empty in trees written before they were
    kept, and for messages that lack the header.
    """

    uid: int
    blob_id: bytes
    size: int
    internaldate: datetime
    flags: tuple[str, ...]
    sender: str = ""
    subject: str = ""
    message_id: str = ""


@dataclass(frozen=True)
class FolderTree:
    """Every message of one folder, keyed by UID."""

    name: str
    uidvalidity: int
    messages: dict[int, MessageEntry] = field(default_factory=dict)

    def encode(self) -> bytes:
        # orjson rather than json: it writes the internal dates itself (RFC 3339, as
        # isoformat() does), and a full backup's trees cost 0.011 CPU-s instead of 0.056
        # (docs/benchmarks.md), which more than pays for keeping the header values.
        rows = [
            [
                m.uid,
                m.blob_id.hex(),
                m.size,
                m.internaldate,
                m.flags,
                m.sender,
                m.subject,
                m.message_id,
            ]
            for m in sorted(self.messages.values(), key=lambda m: m.uid)
        ]
        return orjson.dumps({"name": self.name, "uidvalidity": self.uidvalidity, "messages": rows})

    @classmethod
    def decode(cls, data: bytes) -> FolderTree:
        """Inverse of :meth:`encode`; also reads the rows of earlier releases, which have
        no header values (5 items rather than 8: the values are then empty).

        >>> t = FolderTree("Ünï", 7, {3: MessageEntry(3, b"\\x01" * 32, 10,
        ...     datetime.fromisoformat("2024-01-02T03:04:05+00:00"), ("\\\\Seen",),
        ...     "Zoë <z@example.org>", "=?utf-8?q?=C3=A9t=C3=A9?=", "<1@example.org>")})
        >>> FolderTree.decode(t.encode()) == t
        True
        """
        doc = orjson.loads(data)
        messages = {
            row[0]: MessageEntry(
                row[0],
                bytes.fromhex(row[1]),
                row[2],
                datetime.fromisoformat(row[3]),
                tuple(row[4]),
                *row[5:8],
            )
            for row in doc["messages"]
        }
        return cls(doc["name"], doc["uidvalidity"], messages)


@dataclass(frozen=True)
class FolderRef:
    """A folder as a snapshot records it: sync markers and the id of its tree."""

    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    count: int
    tree: bytes


@dataclass(frozen=True)
class Snapshot:
    """One account at one time."""

    name: str
    account: str
    time: datetime
    folders: tuple[FolderRef, ...]
    stats: dict[str, int] = field(default_factory=dict)

    def folder(self, name: str) -> FolderRef | None:
        return next((f for f in self.folders if f.name == name), None)

    def encode(self) -> bytes:
        doc: dict[str, Any] = asdict(self)
        doc["time"] = self.time.isoformat()
        for f in doc["folders"]:
            f["tree"] = f["tree"].hex()
        return json.dumps(doc, ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> Snapshot:
        doc = json.loads(data)
        folders = tuple(
            FolderRef(**{**f, "tree": bytes.fromhex(f["tree"])}) for f in doc["folders"]
        )
        return cls(
            doc["name"], doc["account"], datetime.fromisoformat(doc["time"]), folders, doc["stats"]
        )
