"""One backup run: bring the vault's view of an account up to date and record a snapshot.

Per folder, in order, the cheapest path that is still exact:

1. ``STATUS`` (of every folder at the start, in one round trip). Same UIDVALIDITY,
   UIDNEXT, message count and HIGHESTMODSEQ as the previous snapshot: the folder did not
   change; its tree is reused.
2. Same UIDVALIDITY and both runs have HIGHESTMODSEQ (CONDSTORE): fetch flags, size and
   date only of messages changed since (new ones included). Expunges are detected by
   arithmetic (previous count + new - now); only if some happened are all UIDs listed.
3. Same UIDVALIDITY without CONDSTORE: a UID, flags and size scan of the whole folder.
4. Nothing stored of this UIDVALIDITY (first run, or UIDVALIDITY changed): flags, size,
   date and bytes of every message in one pass (``Source.fetch_folder``). After a
   UIDVALIDITY change every message is downloaded again to learn its content id, but
   nothing already stored is stored again.

New messages are fetched in batches and stored by content id; a message already in the
vault (another folder, account or run) costs no space. Each new message's tree entry
also keeps its raw From, Subject and Message-ID (:mod:`vigile.vault.headers`), for
listings and search; entries carried over from the previous tree keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vigile.vault.headers import header_fields
from vigile.vault.snapshot import FolderRef, FolderTree, MessageEntry, Snapshot
from vigile.vault.source import FetchedMessage, FolderStatus, MessageMeta, Source

if TYPE_CHECKING:
    from vigile.vault.repo import Vault


@dataclass
class BackupStats:
    """Counts of one run, for the progress display and ``--json``."""

    folders: int = 0
    folders_unchanged: int = 0
    messages: int = 0
    fetched: int = 0
    stored: int = 0
    bytes_fetched: int = 0
    flag_changes: int = 0
    expunged: int = 0
    resynced_folders: list[str] = field(default_factory=list)


#: Called after each fetched message with (folder, bytes) for progress bars.
Progress = Callable[[str, int], None]

#: Fetched messages handed to the vault together (one index look-up for the group): at
#: most this many, and no more than STORE_GROUP_BYTES once the last one is added. 128
#: rather than 32: a quarter of the look-ups and hand-overs, 0.04-0.05 s less time and
#: about 0.1 CPU-s less for a 20,000-message full backup (docs/benchmarks.md).
STORE_GROUP = 128
#: Bounds the memory a group holds whatever the size of the messages.
STORE_GROUP_BYTES = 4 << 20


def _groups(
    fetched: Iterable[FetchedMessage], count: int, size: int
) -> Iterator[list[FetchedMessage]]:
    """Consecutive groups of at most ``count`` messages, each closed as soon as its
    messages reach ``size`` bytes (the last group shorter).

    >>> m = MessageMeta(1, 3, datetime(2024, 1, 1, tzinfo=UTC), ())
    >>> [len(g) for g in _groups([FetchedMessage(m, b"abc")] * 5, 2, 100)]
    [2, 2, 1]
    >>> [len(g) for g in _groups([FetchedMessage(m, b"abc")] * 5, 4, 6)]
    [2, 2, 1]
    """
    group: list[FetchedMessage] = []
    held = 0
    for message in fetched:
        group.append(message)
        held += len(message.raw)
        if len(group) >= count or held >= size:
            yield group
            group, held = [], 0
    if group:
        yield group


def _unchanged(prev: FolderRef, st: FolderStatus) -> bool:
    return st.highestmodseq is not None and (
        prev.uidvalidity,
        prev.uidnext,
        prev.count,
        prev.highestmodseq,
    ) == (st.uidvalidity, st.uidnext, st.messages, st.highestmodseq)


def _changed_metadata(
    source: Source, st: FolderStatus, prev: FolderRef, old: dict[int, MessageEntry]
) -> tuple[list[MessageMeta], set[int] | None]:
    """Metadata of changed messages, and the full UID set only if expunges happened."""
    assert prev.highestmodseq is not None
    changed = source.metadata(st.name, changed_since=prev.highestmodseq)
    new = sum(1 for m in changed if m.uid not in old)
    if len(old) + new == st.messages:
        return changed, None
    return changed, set(source.uids(st.name))


def _apply_changes(
    source: Source,
    st: FolderStatus,
    prev: FolderRef | None,
    messages: dict[int, MessageEntry],
    stats: BackupStats,
) -> list[MessageMeta]:
    """Apply flag changes and expunges to ``messages``; returns the new messages' metadata."""
    if prev is not None and prev.highestmodseq and st.highestmodseq:
        changed, present = _changed_metadata(source, st, prev, messages)
    else:
        changed = source.metadata(st.name)
        present = {m.uid for m in changed}
    if present is not None:
        gone = [uid for uid in messages if uid not in present]
        stats.expunged += len(gone)
        for uid in gone:
            del messages[uid]
    to_fetch = []
    for meta in changed:
        entry = messages.get(meta.uid)
        if entry is None:
            to_fetch.append(meta)
        elif entry.flags != meta.flags:
            messages[meta.uid] = entry._replace(flags=meta.flags)
            stats.flag_changes += 1
    return to_fetch


def _store(
    vault: Vault,
    folder: str,
    fetched: Iterable[FetchedMessage],
    messages: dict[int, MessageEntry],
    stats: BackupStats,
    progress: Progress | None,
) -> None:
    """Store fetched messages (a group at a time) and enter them in ``messages``."""
    for group in _groups(fetched, STORE_GROUP, STORE_GROUP_BYTES):
        raws = [raw for _, raw in group]
        ids = vault.put_many(b"M", raws)
        sizes = list(map(len, raws))
        for (m, raw), (blob_id, _), size in zip(group, ids, sizes, strict=True):
            messages[m.uid] = MessageEntry(
                m.uid, blob_id, size, m.internaldate, m.flags, *header_fields(raw)
            )
        stats.fetched += len(group)
        stats.stored += sum(stored for _, stored in ids)
        stats.bytes_fetched += sum(sizes)
        if progress is not None:
            for size in sizes:
                progress(folder, size)


def _downloads_whole(st: FolderStatus, prev: FolderRef | None) -> bool:
    """Whether :func:`sync_folder` downloads the folder in one pass (path 4)."""
    return prev is None or prev.uidvalidity != st.uidvalidity or prev.count == 0


def _next_download(following: Iterable[tuple[FolderStatus, FolderRef | None]]) -> str | None:
    """The folder whose one-pass download is the next call on the source, if it is one
    (the ``next_folder`` hint of ``Source.fetch_folder``): unchanged folders cost no call;
    a folder synchronised otherwise makes other calls first."""
    for st, prev in following:
        if prev is not None and _unchanged(prev, st):
            continue
        return st.name if _downloads_whole(st, prev) and st.messages > 0 else None
    return None


def sync_folder(
    vault: Vault,
    source: Source,
    st: FolderStatus,
    prev: FolderRef | None,
    stats: BackupStats,
    progress: Progress | None = None,
    next_folder: str | None = None,
) -> FolderRef:
    """Bring one folder up to date; returns the reference the new snapshot records.

    ``next_folder`` is passed to a one-pass download (see ``Source.fetch_folder``).
    """
    if prev is not None and _unchanged(prev, st):
        stats.folders_unchanged += 1
        stats.messages += prev.count
        return prev
    same_epoch = prev is not None and prev.uidvalidity == st.uidvalidity
    if prev is not None and not same_epoch:
        stats.resynced_folders.append(st.name)
    messages = dict(vault.get_tree(prev.tree).messages) if prev is not None and same_epoch else {}
    if not messages:  # nothing known of this epoch: list and download in one pass
        fetched = source.fetch_folder(st.name, next_folder=next_folder)
        _store(vault, st.name, fetched, messages, stats, progress)
    else:
        to_fetch = _apply_changes(source, st, prev, messages, stats)
        _store(vault, st.name, source.fetch(st.name, to_fetch), messages, stats, progress)
    tree_id = vault.put_tree(FolderTree(st.name, st.uidvalidity, messages))
    stats.messages += len(messages)
    return FolderRef(st.name, st.uidvalidity, st.uidnext, st.highestmodseq, len(messages), tree_id)


def backup_account(
    vault: Vault, source: Source, progress: Progress | None = None, now: datetime | None = None
) -> tuple[Snapshot, BackupStats]:
    """Back up every selected folder of ``source`` and save a snapshot of the account."""
    last = vault.latest_snapshot(source.account)
    stats = BackupStats()
    refs = []
    statuses = source.statuses(source.folders())
    previous = [last.folder(st.name) if last is not None else None for st in statuses]
    for n, (st, prev) in enumerate(zip(statuses, previous, strict=True)):
        following = zip(statuses[n + 1 :], previous[n + 1 :], strict=True)
        refs.append(
            sync_folder(vault, source, st, prev, stats, progress, _next_download(following))
        )
        stats.folders += 1
    when = now or datetime.now(UTC)
    name = vault.snapshot_name(source.account, when)
    counts = {k: v for k, v in vars(stats).items() if isinstance(v, int)}
    snapshot = Snapshot(name, source.account, when, tuple(refs), counts)
    vault.save_snapshot(snapshot)
    return snapshot, stats
