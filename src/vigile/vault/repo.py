"""The vault on disk: one folder, append-only.

Layout::

    config              KDF parameters and the sealed keys (see crypto.py)
    packs/xx/<sha256>   message and tree records (see pack.py)
    snapshots/<name>    one sealed snapshot per account per run
    index.sqlite        local cache: record id -> pack, offset, place in its frame (index.py)
    lock, readers       flock: who may use the vault at the same time (see lock.py)

Write order, which is what makes an interrupted run harmless: records go to a temporary
pack (sealed and written on a worker thread, ``packer.py``); a full pack is fsynced and
renamed; then its index rows are committed; the snapshot is written last, also by rename.
A run killed at any point leaves either nothing new, or published packs whose records the
next run finds in the index (or re-indexes from the pack headers at open) and does not
store again. Nothing is ever overwritten in place.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import zstandard

from vigile.vault.crypto import CONTENT_IDS, PACK_HASHES, Keys, dumps, unlock, wrap_keys
from vigile.vault.errors import VaultDamagedError, VaultError
from vigile.vault.index import Index
from vigile.vault.lock import Access, VaultLock
from vigile.vault.pack import (
    FRAME,
    FRAME_BYTES,
    RecordRef,
    compressor,
    pack_path,
    parse_table,
    read_record,
    scan_pack,
)
from vigile.vault.packer import BackgroundPacker, Published
from vigile.vault.snapshot import STAMP, FolderTree, Snapshot

DEFAULT_PACK_SIZE = 16 * 1024 * 1024
ACCOUNT_TAG_CHARS = 16


def _disk_error(e: OSError | sqlite3.Error, what: Path) -> VaultError:
    if isinstance(e, sqlite3.Error):  # packs are published before they are indexed
        return VaultError(
            f"{what / 'index.sqlite'}: {e}; the packs written are kept, and indexed at the next run"
        )
    if e.errno == errno.ENOSPC:
        return VaultError(f"{what}: no space left on device; the vault is unchanged by this run")
    return VaultError(f"{what}: {e.strerror}")


def _account_tag(name: str) -> str | None:
    """The account tag a snapshot name carries (``<time>-<tag>-<random>``), or None for
    a name without one (written by earlier releases)."""
    parts = name.split("-")
    return parts[1] if len(parts) == 3 and len(parts[1]) == ACCOUNT_TAG_CHARS else None


def _stamp(name: str) -> str | None:
    """The time prefix of a snapshot name, or None if it has none."""
    head = name[:15]
    try:
        datetime.strptime(head, STAMP)
    except ValueError:
        return None
    return head


class Vault:
    """An open vault. Use :meth:`create` or :meth:`open`; close with :meth:`close`.

    ``access`` says what the caller will do, and so which locks are held from before the
    vault is first read until :meth:`close` (:mod:`vigile.vault.lock`); it defaults to
    ``APPEND`` if ``writable``, else ``READ``. Methods that change the vault refuse an
    access that does not allow them, so no change can be made outside the writer lock.
    """

    def __init__(
        self,
        root: Path,
        keys: Keys,
        *,
        writable: bool = False,
        pack_size: int = DEFAULT_PACK_SIZE,
        access: Access | None = None,
    ) -> None:
        self.root = root
        self.keys = keys
        self.access = access or (Access.APPEND if writable else Access.READ)
        self.writable = self.access.writes
        self.pack_size = pack_size
        self._lock = VaultLock(root, self.access)
        try:
            self.index = Index(root / "index.sqlite")
        except BaseException:
            self._lock.release()
            raise
        self._packer: BackgroundPacker | None = None
        self._pending: set[bytes] = set()
        self._zc = compressor()
        self._zd = zstandard.ZstdDecompressor()
        # The last frame read, as (pack, offset, length) and its authenticated content: a
        # restore reads a frame's members one after the other, and decompresses the frame
        # once. One frame of at most FRAME_BYTES (a larger message, a frame alone, is not
        # kept): memory stays bounded, in a long-lived reader (the console) too.
        self._frame: tuple[tuple[str, int, int], bytes] | None = None
        if self.writable:
            try:
                self.recover()
                self.index.read_concurrently()  # look-ups need not wait for a pack's rows
            except BaseException:
                self.close()
                raise

    @classmethod
    def create(
        cls,
        root: Path,
        secret: bytes,
        kdf: dict[str, int | str] | None = None,
        content_id: str = CONTENT_IDS[0],
        pack_hash: str = PACK_HASHES[0],
        frames: bool = True,
    ) -> None:
        """Make a new, empty vault at ``root`` (which must not hold one).

        ``content_id`` names the content-id algorithm, ``pack_hash`` the hash packs are
        named by and ``frames`` whether records share frames (see crypto.py); the defaults
        are the current ones, the others exist so tests can write a vault as earlier
        releases did.
        """
        if (root / "config").exists():
            raise VaultError(f"{root}: a vault already exists here")
        keys = Keys.generate(content_id, pack_hash, frames)
        for sub in ("packs", "snapshots"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "config").write_bytes(dumps(wrap_keys(keys, secret, kdf)))

    @classmethod
    def open(
        cls,
        root: Path,
        secret: bytes,
        *,
        writable: bool = False,
        pack_size: int | None = None,
        access: Access | None = None,
    ) -> Vault:
        """Open the vault at ``root``; a wrong secret raises ``WrongKeyError``."""
        keys = cls.unlock(root, secret)
        size = pack_size or DEFAULT_PACK_SIZE
        return cls(root, keys, writable=writable, pack_size=size, access=access)

    @staticmethod
    def unlock(root: Path, secret: bytes) -> Keys:
        """The vault's keys (:func:`vigile.vault.crypto.unlock`)."""
        return unlock(root, secret)

    def close(self) -> None:
        self._abort_pack()
        self.index.close()
        self._lock.release()

    def require(self, *allowed: Access, doing: str) -> None:
        """Refuse ``doing`` unless the vault was opened with one of ``allowed``."""
        if self.access not in allowed:
            names = " or ".join(a.name for a in allowed)
            raise VaultError(
                f"{self.root}: {doing} needs the vault opened for {names} "
                f"(it is open for {self.access.name})"
            )

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- records -------------------------------------------------------------------

    def has(self, blob_id: bytes) -> bool:
        return blob_id in self._pending or self.index.has(blob_id)

    def put(self, kind: bytes, content: bytes) -> tuple[bytes, bool]:
        """Store ``content`` unless already present; returns ``(id, newly_stored)``.

        The record is written in the background: it is in the vault once :meth:`flush`
        (or :meth:`save_snapshot`) has returned.
        """
        return self.put_many(kind, [content])[0]

    def put_many(self, kind: bytes, contents: list[bytes]) -> list[tuple[bytes, bool]]:
        """:meth:`put` for several records, with one index look-up for all of them."""
        self.require(Access.APPEND, Access.DELETE, doing="storing records")
        ids = self.keys.blob_ids(contents)
        pending = self._pending
        known = self.index.existing([i for i in ids if i not in pending])
        out, new = [], []
        for i, content in zip(ids, contents, strict=True):
            stored = i not in known and i not in pending
            if stored:
                pending.add(i)
                new.append((kind, i, content))
            out.append((i, stored))
        if new:
            if self._packer is None:
                self._packer = BackgroundPacker(
                    self.root, self.keys, self.pack_size, on_published=self._index_pack
                )
            try:
                self._index(self._packer.add_many(new))
            except (OSError, sqlite3.Error) as e:
                self._abort_pack()
                raise _disk_error(e, self.root) from None
        return out

    def _abort_pack(self) -> None:
        if self._packer is not None:
            self._packer.abort()
        self._packer = None
        self._pending.clear()

    def flush(self) -> None:
        """Publish the current pack and index it."""
        if self._packer is None:
            return
        try:
            self._index(self._packer.flush())
        except (OSError, sqlite3.Error) as e:
            self._abort_pack()
            raise _disk_error(e, self.root) from None

    def _index_pack(self, published: Published) -> None:
        """Index a pack just published (on the packer's publishing thread)."""
        name, size, records = published
        self.index.add_pack(name, size, records)

    def _index(self, published: list[Published]) -> None:
        """Packs published and indexed since: their records are no longer pending."""
        for _, _, records in published:
            self._pending.difference_update(blob_id for _, blob_id, *_ in records)

    def get(self, blob_id: bytes) -> bytes:
        """The content stored under ``blob_id``; damage raises :class:`VaultDamagedError`."""
        ref = self.index.lookup(blob_id)
        if ref is None:
            raise VaultDamagedError(f"record {blob_id.hex()[:16]} is not in the vault")
        return self.read(ref)

    def read(self, ref: RecordRef) -> bytes:
        """Read, authenticate, decompress and re-hash one record (for a member of a frame,
        the frame, unless it is the last one read)."""
        where = f"pack {ref.pack[:16]} byte {ref.offset}"
        if ref.part_offset is None:
            content = self._open(ref, ref.kind, ref.blob_id, where)
        else:
            frame = self._frame
            if frame is None or frame[0] != ref.whole:
                self._frame = None
                frame = (ref.whole, self._open(ref, FRAME, None, where))
                if len(frame[1]) <= FRAME_BYTES:  # a larger message is a frame alone
                    self._frame = frame
            end = ref.part_offset + (ref.part_length or 0)
            content = frame[1][ref.part_offset : end]
        if self.keys.blob_id(content) != ref.blob_id:
            raise VaultDamagedError(f"{where}: content hash does not match")
        return content

    def _open(self, ref: RecordRef, kind: bytes, blob_id: bytes | None, where: str) -> bytes:
        """The decompressed content of the record (or frame) at ``ref``, authenticated;
        a frame must list ``ref`` as a member at its place (``blob_id`` None)."""
        try:
            head_kind, head_id, body = read_record(
                pack_path(self.root, ref.pack), ref.offset, ref.length
            )
            table = b""
            if kind == FRAME:
                members, end = parse_table(body)
                table, body = body[:end], body[end:]
                member = (ref.kind, ref.blob_id, ref.part_offset, ref.part_length)
                if head_kind != FRAME or member not in members:
                    raise ValueError("frame does not hold the record the index says")
            elif (head_kind, head_id) != (kind, blob_id):
                raise ValueError("record header does not match the index")
            content = self._zd.decompress(self.keys.open(body, head_kind + head_id + table))
            if kind == FRAME and len(content) != members[-1][2] + members[-1][3]:
                raise ValueError("frame content does not match its member table")
        except (OSError, ValueError, VaultDamagedError) as e:
            raise VaultDamagedError(f"{where}: {e}") from None
        except zstandard.ZstdError as e:  # authentic but undecodable: a bug, still reported
            raise VaultDamagedError(f"{where}: {e}") from None
        return content

    # ---- recovery ------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Remove unpublished packs and index published packs the index lacks."""
        self.require(Access.APPEND, Access.DELETE, doing="recovery")
        known = self.index.packs()
        found = []
        for path in sorted((self.root / "packs").glob("*/*")):
            if path.name not in known:
                rows = (
                    (r.kind, r.blob_id, r.offset, r.length, r.part_offset, r.part_length)
                    for r in scan_pack(path)
                )
                self.index.add_pack(path.name, path.stat().st_size, rows)
                found.append(path.name)
        for tmp in (self.root / "packs").glob(".tmp-*"):
            tmp.unlink()
        return found

    # ---- snapshots -----------------------------------------------------------------

    def put_tree(self, tree: FolderTree) -> bytes:
        return self.put(b"T", tree.encode())[0]

    def get_tree(self, tree_id: bytes) -> FolderTree:
        return FolderTree.decode(self.get(tree_id))

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Flush pending records, then write the snapshot by atomic rename."""
        self.require(Access.APPEND, Access.DELETE, doing="writing a snapshot")
        self.flush()
        path = self.root / "snapshots" / snapshot.name
        tmp = path.with_name(f".tmp-{snapshot.name}")
        sealed = self.keys.seal(self._zc.compress(snapshot.encode()), b"S" + snapshot.name.encode())
        try:
            with open(tmp, "wb") as f:
                f.write(sealed)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _disk_error(e, path) from None

    def snapshot_name(self, account: str, when: datetime) -> str:
        """A new snapshot's file name: ``<UTC second>-<account tag>-<random>``.

        The tag (:meth:`Keys.account_tag`) lets :meth:`snapshots` and
        :meth:`latest_snapshot` skip other accounts' snapshots unopened; the name is
        authenticated with the snapshot, so a file renamed to another tag fails to open.
        """
        stamp = when.astimezone(UTC).strftime(STAMP)
        return f"{stamp}-{self.keys.account_tag(account)}-{os.urandom(4).hex()}"

    def snapshots(self, account: str | None = None) -> list[Snapshot]:
        """Every snapshot (of ``account``), oldest first.

        For one account only its own snapshot files are opened (and those of earlier
        releases, whose names carry no account tag).
        """
        out = []
        for name in self._snapshot_names(account):
            snap = self._load_snapshot(self.root / "snapshots" / name)
            if account is None or snap.account == account:
                out.append(snap)
        return sorted(out, key=lambda s: (s.time, s.name))

    def load_snapshot(self, name: str) -> Snapshot | None:
        """The snapshot named ``name``, or None if the vault has none of that name (a name
        is looked up among the snapshot files, never used as a path as given)."""
        if name not in self._snapshot_names():
            return None
        return self._load_snapshot(self.root / "snapshots" / name)

    def _load_snapshot(self, path: Path) -> Snapshot:
        try:
            plain = self.keys.open(path.read_bytes(), b"S" + path.name.encode())
        except VaultDamagedError:
            raise VaultDamagedError(f"{path}: snapshot fails its authentication tag") from None
        return Snapshot.decode(self._zd.decompress(plain))

    def snapshot_at(self, account: str, at: datetime | None) -> Snapshot:
        """The newest snapshot of ``account`` taken at or before ``at`` (now if ``None``)."""
        at = at or datetime.now(UTC)
        found = self.latest_snapshot(account, at)
        if found is None:
            raise VaultError(f"no snapshot of account {account!r} at or before {at.isoformat()}")
        return found

    def latest_snapshot(self, account: str, at: datetime | None = None) -> Snapshot | None:
        """The newest snapshot of ``account`` (taken at or before ``at``), or None.

        Snapshot files are named after the second they were taken (UTC), so they are
        opened newest first and the search stops at the first second older than a match:
        a backup under cron costs one decryption per account, not one per snapshot ever
        taken. A file whose name does not start with a time is always opened.
        """
        limit = None if at is None else at.astimezone(UTC).strftime(STAMP)
        best: Snapshot | None = None
        best_stamp = ""
        stamps = {name: _stamp(name) for name in self._snapshot_names(account)}
        unstamped = [n for n, s in stamps.items() if s is None]  # always opened
        timed = sorted((n for n, s in stamps.items() if s is not None), reverse=True)
        for name in unstamped + timed:  # newest first: a name begins with its time
            stamp = stamps[name]
            if stamp is not None and best_stamp and stamp < best_stamp:
                break
            if stamp is not None and limit is not None and stamp > limit:
                continue
            snap = self._load_snapshot(self.root / "snapshots" / name)
            if snap.account != account or (at is not None and snap.time > at):
                continue
            if best is None or (snap.time, snap.name) > (best.time, best.name):
                best, best_stamp = snap, stamp or ""
        return best

    def newest_snapshots(self) -> dict[str, tuple[int, Snapshot]]:
        """Per account in the vault: how many snapshots it has, and its newest.

        What a status page shows for every account, without opening every snapshot (a
        year of nightly backups of 50 accounts is 18,000 files): the snapshots of an
        account tag are counted by name, and only those of its newest second are opened
        (a name begins with its time). Untagged names (earlier releases) and names
        without a time are opened, as is every name of a tag whose newest snapshot turns
        out to belong to an account of another tag.
        """
        counts: dict[str, int] = {}
        newest: dict[str, Snapshot] = {}

        def seen(snap: Snapshot, count: int) -> None:
            counts[snap.account] = counts.get(snap.account, 0) + count
            best = newest.get(snap.account)
            if best is None or (snap.time, snap.name) > (best.time, best.name):
                newest[snap.account] = snap

        by_tag: dict[str | None, list[str]] = {}
        for name in self._snapshot_names():
            by_tag.setdefault(_account_tag(name), []).append(name)
        opened = by_tag.pop(None, [])
        for tag, names in by_tag.items():
            stamps = {name: _stamp(name) for name in names}
            top = max((s for s in stamps.values() if s is not None), default=None)
            first = [n for n, s in stamps.items() if s is None or s == top]
            snaps = [self._load_snapshot(self.root / "snapshots" / n) for n in first]
            if all(self.keys.account_tag(s.account) == tag for s in snaps):
                for snap in snaps:
                    seen(snap, 0)
                counts[snaps[0].account] += len(names)
            else:  # not as this release names them: open them all
                opened += names
        for name in opened:
            seen(self._load_snapshot(self.root / "snapshots" / name), 1)
        return {account: (counts[account], newest[account]) for account in newest}

    def _snapshot_names(self, account: str | None = None) -> list[str]:
        """Names of the snapshot files (``.tmp-*`` files of unfinished writes left out);
        with ``account``, those that may be its snapshots (its tag, or no tag)."""
        names = [p.name for p in (self.root / "snapshots").iterdir() if not p.name.startswith(".")]
        if account is None:
            return names
        tag = self.keys.account_tag(account)
        return [n for n in names if _account_tag(n) in (tag, None)]

    def delete_snapshot(self, name: str) -> None:
        self.require(Access.DELETE, doing="deleting a snapshot")
        (self.root / "snapshots" / name).unlink()

    def pack_files(self) -> Iterator[Path]:
        yield from sorted((self.root / "packs").glob("*/*"))
