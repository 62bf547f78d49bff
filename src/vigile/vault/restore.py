"""Bring an account back to a point in time: to a live IMAP mailbox, Maildir, mbox or .eml.

The state at time T is the newest snapshot taken at or before T. A message that fails its
check is reported and skipped; every other message is still restored.

Restoring into a live mailbox adds only what is missing: messages are matched by their
header bytes and size (fetched with ``BODY.PEEK[HEADER]``, so the mailbox is not marked
read), counted as a multiset so two identical copies stay two. Appended messages carry
their flags and internal date. ``diff`` reports, per folder, what the mailbox gained and
lost since T and whose flags changed, without writing anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigile.vault.errors import VaultDamagedError
from vigile.vault.headers import display, header_fields
from vigile.vault.snapshot import FolderTree, MessageEntry, Snapshot

if TYPE_CHECKING:  # the CLI imports this module before it needs IMAP or the vault
    from vigile.vault.imap import ImapTarget
    from vigile.vault.repo import Vault

FORMATS = ("imap", "maildir", "mbox", "eml")
#: IMAP system flags as Maildir info letters (https://cr.yp.to/proto/maildir.html).
MAILDIR_FLAGS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}


@dataclass
class RestoreReport:
    restored: int = 0
    present: int = 0
    reflagged: int = 0
    damaged: list[dict[str, Any]] = field(default_factory=list)


def select_trees(
    vault: Vault,
    snapshot: Snapshot,
    pattern: str | None,
    report: RestoreReport,
    messages: Collection[str] | MessageSelection | None = None,
) -> Iterator[FolderTree]:
    """The snapshot's folder trees; a damaged tree is reported and its folder skipped.

    With ``messages`` (record ids as listings show them, or any prefix of one), each tree
    keeps only the messages whose id begins with one of them, and folders left with none
    are skipped: an item-level restore. A :class:`MessageSelection` gives the trees it
    has already read (its own ``pattern`` applies), so none is read twice.
    """
    if isinstance(messages, MessageSelection):
        for item in messages.folders:
            if isinstance(item, FolderTree):
                yield item
            else:
                report.damaged.append(item)
        return
    prefixes = None if messages is None else tuple(m.lower() for m in messages)
    for ref in snapshot.folders:
        if pattern is None or fnmatchcase(ref.name, pattern):
            try:
                tree = vault.get_tree(ref.tree)
            except VaultDamagedError as e:
                report.damaged.append(
                    {
                        "account": snapshot.account,
                        "folder": ref.name,
                        "uid": None,
                        "error": f"folder listing damaged, {ref.count} messages unknown: {e}",
                    }
                )
                continue
            if prefixes is None:
                yield tree
                continue
            kept = {u: m for u, m in tree.messages.items() if m.blob_id.hex().startswith(prefixes)}
            if kept:
                yield FolderTree(tree.name, tree.uidvalidity, kept)


@dataclass(frozen=True)
class MessageSelection:
    """The messages named for an item-level restore, found in a snapshot's folder trees.

    Each tree is read (decrypted) once: ``folders`` keeps, in snapshot order, the trees
    left with only the named messages and the damage report of each tree that could not
    be read; ``unknown`` holds the names that match no message, so a restore refuses them
    before it writes anything, then restores from ``folders`` (pass the selection as
    ``messages`` to the restore functions).
    """

    folders: tuple[FolderTree | dict[str, Any], ...]
    unknown: tuple[str, ...]


def select_messages(
    vault: Vault, snapshot: Snapshot, pattern: str | None, messages: Collection[str]
) -> MessageSelection:
    """Find ``messages`` (record ids or prefixes) in the snapshot's folders matching
    ``pattern`` (see :class:`MessageSelection`)."""
    folders: list[FolderTree | dict[str, Any]] = []
    report = RestoreReport()
    for tree in select_trees(vault, snapshot, pattern, report, messages):
        folders.extend(report.damaged)  # damaged trees before this one, in order
        report.damaged.clear()
        folders.append(tree)
    folders.extend(report.damaged)
    ids = [
        m.blob_id.hex() for f in folders if isinstance(f, FolderTree) for m in f.messages.values()
    ]
    unknown = tuple(p for p in messages if not any(i.startswith(p.lower()) for i in ids))
    return MessageSelection(tuple(folders), unknown)


def match_key(raw_or_header: bytes, size: int) -> bytes:
    """What identifies a message in a live mailbox: its header bytes and its size.

    >>> match_key(b"Subject: a\\r\\n\\r\\nbody", 17) == match_key(b"Subject: a\\r\\n\\r\\n", 17)
    True
    """
    end = raw_or_header.find(b"\r\n\r\n")
    header = raw_or_header if end < 0 else raw_or_header[: end + 4]
    return hashlib.sha256(header).digest() + size.to_bytes(8, "big")


def subject_of(raw: bytes) -> str:
    """The subject of a message (or header block), decoded for display."""
    return display(header_fields(raw)[1])


def _messages(
    vault: Vault, snapshot: Snapshot, tree: FolderTree, report: RestoreReport
) -> Iterator[tuple[MessageEntry, bytes]]:
    for entry in sorted(tree.messages.values(), key=lambda m: m.uid):
        try:
            yield entry, vault.get(entry.blob_id)
        except VaultDamagedError as e:
            report.damaged.append(
                {
                    "account": snapshot.account,
                    "folder": tree.name,
                    "uid": entry.uid,
                    "error": str(e),
                }
            )


def _safe(folder: str) -> str:
    return folder.replace(os.sep, "%2F") or "%00"


def _write_maildir(root: Path, tree: FolderTree, entry: MessageEntry, raw: bytes) -> None:
    # Written by hand: stdlib mailbox.Maildir rewrites line endings, and a restore must
    # hand back the exact bytes that were backed up.
    box = root / _safe(tree.name)
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    info = "".join(sorted(MAILDIR_FLAGS[f] for f in entry.flags if f in MAILDIR_FLAGS))
    stamp = int(entry.internaldate.timestamp())
    path = box / "cur" / f"{stamp}.{entry.blob_id.hex()[:20]}.{entry.uid}.vigile:2,{info}"
    path.write_bytes(raw)
    os.utime(path, (stamp, stamp))


def _write_eml(root: Path, tree: FolderTree, entry: MessageEntry, raw: bytes) -> None:
    box = root / _safe(tree.name)
    box.mkdir(parents=True, exist_ok=True)
    path = box / f"{entry.uid}.eml"
    path.write_bytes(raw)
    stamp = int(entry.internaldate.timestamp())
    os.utime(path, (stamp, stamp))


def restore_files(
    vault: Vault,
    snapshot: Snapshot,
    fmt: str,
    out: Path,
    pattern: str | None = None,
    progress: Callable[[int], None] | None = None,
    messages: Collection[str] | MessageSelection | None = None,
) -> RestoreReport:
    """Write the snapshot's messages (only ``messages``, if given: see
    :func:`select_trees`) under ``out`` as Maildir, mbox or .eml files."""
    # Imported here: `vault backup` loads this module (the restore command's --to
    # choices) and does not need it.
    import mailbox

    report = RestoreReport()
    out.mkdir(parents=True, exist_ok=True)
    for tree in select_trees(vault, snapshot, pattern, report, messages):
        box = mailbox.mbox(out / f"{_safe(tree.name)}.mbox") if fmt == "mbox" else None
        for entry, raw in _messages(vault, snapshot, tree, report):
            if box is not None:
                msg = mailbox.mboxMessage(raw)
                msg.set_flags(
                    "".join(MAILDIR_FLAGS.get(f, "") for f in entry.flags).replace("T", "D")
                )
                box.add(msg)
            elif fmt == "maildir":
                _write_maildir(out, tree, entry, raw)
            else:
                _write_eml(out, tree, entry, raw)
            report.restored += 1
            if progress is not None:
                progress(len(raw))
        if box is not None:
            box.close()
    return report


def restore_imap(
    vault: Vault,
    snapshot: Snapshot,
    target: ImapTarget,
    pattern: str | None = None,
    progress: Callable[[int], None] | None = None,
    reset_flags: bool = False,
    messages: Collection[str] | MessageSelection | None = None,
) -> RestoreReport:
    """Append to ``target`` every message of the snapshot (of ``messages``, if given:
    see :func:`select_trees`) that it does not hold.

    With ``reset_flags``, messages it does hold also get their flags set back to the
    snapshot's (otherwise they are left exactly as they are).
    """
    report = RestoreReport()
    for tree in select_trees(vault, snapshot, pattern, report, messages):
        target.ensure_folder(tree.name)
        live: dict[bytes, list[tuple[int, tuple[str, ...]]]] = {}
        for uid, (header, size, flags) in sorted(target.headers(tree.name).items()):
            live.setdefault(match_key(header, size), []).append((uid, flags))
        for entry, raw in _messages(vault, snapshot, tree, report):
            matches = live.get(match_key(raw, entry.size))
            if matches:
                uid, flags = matches.pop(0)
                report.present += 1
                if reset_flags and flags != entry.flags:
                    target.set_flags(tree.name, uid, entry.flags)
                    report.reflagged += 1
                continue
            target.append(tree.name, raw, entry.flags, entry.internaldate)
            report.restored += 1
            if progress is not None:
                progress(len(raw))
    return report


def diff_imap(
    vault: Vault,
    snapshot: Snapshot,
    target: ImapTarget,
    pattern: str | None = None,
    messages: Collection[str] | MessageSelection | None = None,
) -> list[dict[str, Any]]:
    """Rows describing how the live mailbox differs from the snapshot (nothing is written).

    With ``messages`` (see :func:`select_trees`), only those messages are compared: each
    is *deleted since* (a restore would add it) or *flags changed*, or absent from the
    rows if the mailbox holds it as it was; what the mailbox gained is not listed.
    """
    rows: list[dict[str, Any]] = []
    report = RestoreReport()
    for tree in select_trees(vault, snapshot, pattern, report, messages):
        live: dict[bytes, list[tuple[int, bytes, tuple[str, ...]]]] = {}
        for uid, (header, size, flags) in sorted(target.headers(tree.name).items()):
            live.setdefault(match_key(header, size), []).append((uid, header, flags))
        for entry, raw in _messages(vault, snapshot, tree, report):
            matches = live.get(match_key(raw, entry.size))
            row = {
                "folder": tree.name,
                "subject": subject_of(raw),
                "vault_flags": " ".join(entry.flags),
            }
            if not matches:
                rows.append({**row, "change": "deleted since", "live_flags": None})
                continue
            _, _, flags = matches.pop(0)
            if flags != entry.flags:
                rows.append({**row, "change": "flags changed", "live_flags": " ".join(flags)})
        for rest in live.values() if messages is None else ():
            for _, header, flags in rest:
                rows.append(
                    {
                        "folder": tree.name,
                        "subject": subject_of(header),
                        "change": "added since",
                        "vault_flags": None,
                        "live_flags": " ".join(flags),
                    }
                )
    rows.extend(
        {
            "folder": d["folder"],
            "subject": f"uid {d['uid']}",
            "change": "damaged in vault",
            "vault_flags": None,
            "live_flags": None,
        }
        for d in report.damaged
    )
    return rows
