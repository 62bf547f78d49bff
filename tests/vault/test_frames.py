"""Messages several to a zstd frame (vault format 5): how frames are cut, read and pruned."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.vault.mailgen import make_message

from vigile.vault.crypto import DEFAULT_KDF, Keys
from vigile.vault.errors import VaultDamagedError
from vigile.vault.lock import Access
from vigile.vault.pack import (
    FRAME,
    FRAME_BYTES,
    frame_units,
    pack_path,
    parse_table,
    read_record,
    scan_pack,
)
from vigile.vault.prune import forget, prune
from vigile.vault.repo import Vault
from vigile.vault.restore import restore_files
from vigile.vault.snapshot import FolderRef, FolderTree, MessageEntry, Snapshot
from vigile.vault.verify import verify

FAST_KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)
SECRET = b"frames test secret"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.sampled_from([b"M", b"M", b"T"]), st.integers(0, FRAME_BYTES + 10)),
        max_size=40,
    )
)
def test_frames_hold_every_message_once_in_order_within_the_bound(
    shapes: list[tuple[bytes, int]],
) -> None:
    records = [(kind, n.to_bytes(32, "big"), b"x" * size) for n, (kind, size) in enumerate(shapes)]
    units = frame_units(records, lambda table: b"f" * 32)
    framed: list[bytes] = []
    for kind, _, table, content in units:
        if kind != FRAME:  # a folder tree: a record of its own
            assert kind == b"T" and table == b""
            continue
        members, end = parse_table(table + b"sealed")
        assert end == len(table) and len(content) == sum(n for *_, n in members)
        assert len(members) == 1 or len(content) <= FRAME_BYTES
        assert all(kind == b"M" for kind, *_ in members)
        framed += [blob_id for _, blob_id, _, _ in members]
    assert framed == [i for kind, i, _ in records if kind == b"M"]
    assert sum(k == b"T" for k, *_ in units) == sum(k == b"T" for k, _, _ in records)


@settings(max_examples=100)
@given(st.binary(max_size=400), st.integers(0, 3))
def test_any_frame_body_scans_as_members_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, count: int
) -> None:
    """Whatever follows a frame's head (a member table claiming ``count`` members, then
    anything), scanning the pack gives that frame's members or one error naming a byte."""
    data = count.to_bytes(4, "big") + body
    path = tmp_path_factory.mktemp("frame") / "pack"
    path.write_bytes(b"VGPACK\x00\x01" + FRAME + b"f" * 32 + len(data).to_bytes(4, "big") + data)
    try:
        members = list(scan_pack(path))
    except ValueError as e:
        assert "byte" in str(e)
        return
    assert len(members) == count and all(r.kind in (b"M", b"T") for r in members)
    assert all(r.offset == 8 and r.length == len(data) for r in members)


def _messages(count: int) -> list[bytes]:
    rng = random.Random(5)
    return [make_message(rng, n) for n in range(count)]


def _snapshot(vault: Vault, name: str, when: datetime, folder: list[bytes]) -> Snapshot:
    stored = vault.put_many(b"M", folder)
    entries = {
        uid: MessageEntry(uid, blob_id, len(raw), when, ())
        for uid, ((blob_id, _), raw) in enumerate(zip(stored, folder, strict=True), 1)
    }
    tree_id = vault.put_tree(FolderTree(name, 1, entries))
    snap = Snapshot(
        vault.snapshot_name("alice", when),
        "alice",
        when,
        (FolderRef(name, 1, len(folder) + 1, 1, len(folder), tree_id),),
    )
    vault.save_snapshot(snap)
    return snap


def _frames(vault: Vault) -> dict[tuple[str, int, int], list[Any]]:
    frames: dict[tuple[str, int, int], list[Any]] = {}
    for ref in vault.index.records():
        if ref.part_offset is not None:
            frames.setdefault(ref.whole, []).append(ref)
    return frames


def test_prune_copies_whole_frames_sealed_and_reframes_the_rest(tmp_path: Path) -> None:
    """After the older snapshot is forgotten, a frame all of whose messages are still
    referenced is copied as it was (sealed, byte for byte); a frame some of whose
    messages are not is opened and its kept messages framed anew; the dry run's figures
    are the real run's; everything kept reads back, verifies and still dedups."""
    root = tmp_path / "vault"
    Vault.create(root, SECRET, FAST_KDF)
    mail = _messages(60)
    kept_mail = mail[0:30:2] + mail[30:]
    with Vault.open(root, SECRET, writable=True) as vault:
        _snapshot(vault, "Old", T0, mail)
        _snapshot(vault, "Kept", T0 + timedelta(days=1), kept_mail)
        kept_ids = set(vault.keys.blob_ids(kept_mail))
    with Vault.open(root, SECRET, access=Access.DELETE) as vault:
        before = _frames(vault)
        whole = [f for f in before.values() if all(r.blob_id in kept_ids for r in f)]
        partly = [f for f in before.values() if 0 < sum(r.blob_id in kept_ids for r in f) < len(f)]
        assert whole and partly, "the messages should make frames of both kinds"
        sealed = {
            f[0].whole: read_record(pack_path(root, f[0].pack), *f[0].whole[1:]) for f in whole
        }
        now = T0 + timedelta(days=2)
        doomed = forget(vault, timedelta(0), now, dry_run=True)
        planned = prune(vault, set(doomed), dry_run=True)
        assert forget(vault, timedelta(0), now) == doomed and len(doomed) == 1
        stats = prune(vault)
        assert planned == stats and stats.records_dropped == 60 - len(kept_mail) + 1  # and a tree
        after = _frames(vault)
        assert {r.blob_id for f in after.values() for r in f} == kept_ids
        copied = [read_record(pack_path(root, f[0].pack), *f[0].whole[1:]) for f in after.values()]
        assert all(record in copied for record in sealed.values())  # sealed, as they were
        for old in partly:  # framed anew: a frame of exactly the members still referenced
            kept = [r.blob_id for r in old if r.blob_id in kept_ids]
            (new,) = {vault.index.lookup(i).whole for i in kept}
            _, _, body = read_record(pack_path(root, new[0]), *new[1:])
            assert [i for _, i, _, _ in parse_table(body)[0]] == kept
        assert verify(vault).ok
        assert [vault.get(i) for i in vault.keys.blob_ids(kept_mail)] == kept_mail
    with Vault.open(root, SECRET, writable=True) as vault:  # recovery finds nothing to add
        assert vault.put_many(b"M", kept_mail) == [
            (i, False) for i in vault.keys.blob_ids(kept_mail)
        ]


def test_prune_stops_at_a_damaged_frame_it_would_reframe(tmp_path: Path) -> None:
    """A frame to be re-framed that fails its tag stops the prune with one clear error:
    its pack is left as it was, no temporary pack stays behind, and every message
    outside the damaged frame still reads."""
    root = tmp_path / "vault"
    Vault.create(root, SECRET, FAST_KDF)
    mail = _messages(30)
    with Vault.open(root, SECRET, writable=True) as vault:
        _snapshot(vault, "Old", T0, mail)
        _snapshot(vault, "Kept", T0 + timedelta(days=1), mail[::2])
        ids = vault.keys.blob_ids(mail)
    with Vault.open(root, SECRET, access=Access.DELETE) as vault:
        members = next(iter(_frames(vault).values()))
        pack, offset, length = members[0].whole
        path = pack_path(root, pack)
        data = bytearray(path.read_bytes())
        data[offset + 36 + length] ^= 1  # the last byte of its tag
        path.write_bytes(bytes(data))
        forget(vault, timedelta(0), T0 + timedelta(days=2))
        with pytest.raises(VaultDamagedError, match="authentication tag"):
            prune(vault)
        assert path.exists() and not list((root / "packs").glob(".tmp-*"))
        damaged = {r.blob_id for r in members}
        kept = [i for i in ids[::2] if i not in damaged]
        assert kept and all(vault.get(i) == mail[ids.index(i)] for i in kept)


def test_a_folder_restore_opens_each_frame_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restoring a folder reads its messages frame by frame: each frame is authenticated
    and decompressed once, however many of its messages are restored; one message's
    restore opens its one frame."""
    root = tmp_path / "vault"
    Vault.create(root, SECRET, FAST_KDF)
    mail = _messages(40)
    with Vault.open(root, SECRET, writable=True) as vault:
        snap = _snapshot(vault, "INBOX", T0, mail)
    opened: list[bytes] = []
    original: Callable[..., bytes] = Keys.open

    def counting(keys: Keys, sealed: bytes, aad: bytes) -> bytes:
        opened.append(aad[:1])
        return original(keys, sealed, aad)

    monkeypatch.setattr(Keys, "open", counting)
    with Vault.open(root, SECRET) as vault:
        frames = _frames(vault)
        assert 1 < len(frames) < len(mail)
        opened.clear()
        report = restore_files(vault, snap, "eml", tmp_path / "out")
        assert report.restored == 40 and not report.damaged
        assert opened.count(FRAME) == len(frames) and opened.count(b"T") == 1
        got = [(tmp_path / "out" / "INBOX" / f"{uid}.eml").read_bytes() for uid in range(1, 41)]
        assert got == mail
    with Vault.open(root, SECRET) as vault:
        opened.clear()
        one = vault.keys.blob_id(mail[17]).hex()[:16]
        report = restore_files(vault, snap, "eml", tmp_path / "one", messages=[one])
        assert report.restored == 1 and opened.count(FRAME) == 1
