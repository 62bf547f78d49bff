"""The fast backup path: pipelined FETCH (against the real Dovecot), response framing
(property tests) and background sealing of records."""

from __future__ import annotations

import io
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.vault.dovecot import PASSWORD, Dovecot
from tests.vault.mailgen import fill, open_client

from vigile.vault.crypto import DEFAULT_KDF, Keys
from vigile.vault.errors import SourceConnectionError, SourceError, VaultError
from vigile.vault.imap import ImapSource
from vigile.vault.imapstream import MAX_LINE, MAX_LITERAL, LineTooLong, read_response
from vigile.vault.pack import (
    FRAME,
    RECORD_HEAD,
    RecordRef,
    hash_file,
    pack_path,
    parse_table,
    read_record,
)
from vigile.vault.packer import BackgroundPacker
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount
from vigile.vault.source import MessageMeta, RetryingSource
from vigile.vault.verify import verify

FAST_KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)


@pytest.fixture
def inbox(account: ImapAccount) -> tuple[ImapAccount, dict[int, bytes]]:
    """An account with 23 messages in INBOX, six of them of 2 MB (more than the socket
    buffers hold, so that Dovecot runs pipelined FETCHes concurrently), and their bytes
    by UID as IMAPClient reads them."""
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 23}, seed=5, large=6)
    client.select_folder("INBOX", readonly=True)
    rows = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
    client.logout()
    return account, {uid: bytes(r[b"BODY[]"]) for uid, r in rows.items()}


def test_pipelined_fetch_gives_every_message_in_the_given_order(
    inbox: tuple[ImapAccount, dict[int, bytes]],
) -> None:
    account, expected = inbox
    # Batches of 2: twelve commands, three in flight, which Dovecot runs concurrently.
    source = ImapSource(account, fetch_batch=2)
    try:
        metas = source.metadata("INBOX")
        assert sorted(m.uid for m in metas) == sorted(expected)
        shuffled = list(metas)
        random.Random(3).shuffle(shuffled)
        ghost = MessageMeta(10_000, 1, metas[0].internaldate, ())  # expunged since listed
        shuffled.insert(7, ghost)
        for order in (metas, shuffled):
            fetched = []
            for message in source.fetch("INBOX", order):
                fetched.append(message)
                if len(fetched) == 1:
                    time.sleep(0.5)  # the server fills the socket and goes on to the next FETCH
            assert [f.meta.uid for f in fetched] == [m.uid for m in order if m is not ghost]
            assert all(f.raw == expected[f.meta.uid] for f in fetched)
        assert source.status("INBOX").messages == 23  # the connection is in step again
    finally:
        source.close()


def test_pipelined_status_matches_one_status_at_a_time(account: ImapAccount) -> None:
    """Folder names of every shape the server may quote back differently: with a space,
    a quote, a backslash, non-ASCII (modified UTF-7), all digits, and an empty folder."""
    names = ["INBOX", "Nouveau dossier", 'Dit "ça"', "back\\slash", "Été", "2024", "Vide"]
    client = open_client(account, PASSWORD)
    try:
        fill(client, {name: n for n, name in enumerate(names)}, seed=9)
        items = ["UIDVALIDITY", "UIDNEXT", "MESSAGES", "HIGHESTMODSEQ"]
        expected = [client.folder_status(name, items) for name in names]
    finally:
        client.logout()
    source = ImapSource(account)
    try:
        got = source.statuses([*reversed(names)])
        assert [st.name for st in got] == [*reversed(names)]
        for st, want in zip(reversed(got), expected, strict=True):
            assert (st.uidvalidity, st.uidnext, st.messages, st.highestmodseq) == tuple(
                int(want[item.encode()]) for item in items
            )
        assert [st.messages for st in got] == [*reversed(range(len(names)))]
        with pytest.raises(SourceError, match="command refused"):
            source.statuses(["INBOX", "No such folder"])
        assert source.status("INBOX").messages == 0  # refused, but still in step
        # A server that spells a name back otherwise: that folder is asked again alone.
        asked = source._fetch_statuses
        respelled = lambda folders, items: {  # noqa: E731
            name.upper(): st for name, st in asked(folders, items).items()
        }
        source._fetch_statuses = respelled  # type: ignore[method-assign]
        assert source.statuses(["Vide", "INBOX"]) == got[:1] + got[-1:]
    finally:
        source.close()


def test_abandoned_fetch_is_reconnected_not_misread(
    inbox: tuple[ImapAccount, dict[int, bytes]],
) -> None:
    account, expected = inbox
    source = ImapSource(account, fetch_batch=4)
    stream = source.fetch("INBOX", source.metadata("INBOX"))
    next(stream)
    stream.close()  # responses still on the wire
    with pytest.raises(SourceConnectionError):
        source.status("INBOX")
    source.close()
    retrying = RetryingSource(lambda: ImapSource(account, fetch_batch=4), sleep=lambda _: None)
    try:
        metas = retrying.metadata("INBOX")
        assert {f.meta.uid: f.raw for f in retrying.fetch("INBOX", metas)} == expected
    finally:
        retrying.close()


def _small_receive_buffer(address: tuple[str, int], timeout: object = None, *_: object) -> Any:
    """``socket.create_connection`` with a 256 KiB receive buffer, set before connecting
    (the kernel may otherwise grow it to tens of MB and take a whole folder in)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
    if isinstance(timeout, int | float):
        sock.settimeout(timeout)
    sock.connect(address)
    return sock


def _kicked(dovecot: Dovecot, user: str) -> None:
    """Disconnect ``user`` and wait until Dovecot has closed the connection."""
    dovecot.doveadm("kick", user)
    deadline = time.monotonic() + 30
    while user in dovecot.doveadm("who", "-1") and time.monotonic() < deadline:
        time.sleep(0.02)


def test_one_pass_fetch_resumes_after_a_disconnect(
    dovecot: Dovecot,
    inbox: tuple[ImapAccount, dict[int, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account, expected = inbox
    listed = ImapSource(account)
    metas = {m.uid: m for m in listed.metadata("INBOX")}
    listed.close()
    # With the reader paused until Dovecot has let go, a small receive buffer makes sure
    # the rest of the folder (more than 10 MB) is still on the server's side: the fetch
    # is cut, whatever the machine's load.
    monkeypatch.setattr(socket, "create_connection", _small_receive_buffer)
    sleeps: list[float] = []
    source = RetryingSource(lambda: ImapSource(account), sleep=sleeps.append)
    got: dict[int, bytes] = {}
    try:
        for message in source.fetch_folder("INBOX"):
            if not got:  # the 2 MB messages come first: the rest is still on the server
                _kicked(dovecot, account.username)
            assert message.meta.uid not in got and message.meta == metas[message.meta.uid]
            got[message.meta.uid] = message.raw
        assert list(got) == sorted(got)
        assert got == expected and source.retries >= 1 and sleeps[0] == 0.5
    finally:
        source.close()


def _wire(parts: list[bytes], literals: list[bytes]) -> bytes:
    out = b""
    for part, literal in zip(parts, literals, strict=False):
        out += part + b"{%d}\r\n" % len(literal) + literal
    return out + parts[-1] + b"\r\n"


_text = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ").replace(b"{", b"("))


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=4), st.data())
def test_response_framing_round_trips(literals: list[bytes], data: st.DataObject) -> None:
    parts = [data.draw(_text) for _ in range(len(literals) + 1)]
    response = read_response(io.BytesIO(_wire(parts, literals)))
    assert response.literals == literals
    assert response.text == b"".join(parts) + b"\r\n"


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_bytes_frame_as_a_response_or_a_clean_end(data: bytes) -> None:
    try:
        response = read_response(io.BytesIO(data))
    except (EOFError, LineTooLong):  # cut short, or a literal announced too large
        return
    assert response.text.endswith(b"\n") and len(response.text) <= len(data)


@pytest.mark.parametrize("size", [str(MAX_LITERAL + 1), "9" * 40])
def test_a_literal_too_large_is_refused_before_anything_is_allocated(size: str) -> None:
    wire = b"* 1 FETCH (UID 7 BODY[] {" + size.encode() + b"}\r\nabc)\r\n"
    with pytest.raises(LineTooLong, match="larger than the 1073741824 accepted"):
        read_response(io.BytesIO(wire))


def test_overlong_line_is_refused_not_taken_for_a_lost_connection() -> None:
    wire = b"* 1 FETCH (UID 7 BODY[] {3}\r\nabc" + b"x" * MAX_LINE + b")\r\n"
    with pytest.raises(LineTooLong):
        read_response(io.BytesIO(wire))
    with pytest.raises(LineTooLong):
        read_response(io.BytesIO(b"* " + b"x" * MAX_LINE + b"\r\n"))


def test_records_are_stored_once_and_only_after_flush(tmp_path: Path) -> None:
    Vault.create(tmp_path, b"k", FAST_KDF)
    vault = Vault.open(tmp_path, b"k", writable=True, pack_size=4096)
    contents = [bytes([i]) * (500 + i) for i in range(40)]
    first = vault.put_many(b"M", [*contents, contents[0]])
    assert [stored for _, stored in first] == [True] * 40 + [False]
    assert first[0][0] == first[-1][0]
    assert vault.put_many(b"M", contents[:3]) == [(i, False) for i, _ in first[:3]]
    vault.flush()
    assert [vault.get(i) for i, _ in first[:40]] == contents
    assert vault.index.count() == 40
    vault.put(b"M", b"never flushed")
    vault.close()  # an interrupted run: the unfinished pack is dropped, nothing half-indexed
    assert not list((tmp_path / "packs").glob(".tmp-*"))
    reopened = Vault.open(tmp_path, b"k", writable=True)
    try:
        assert reopened.index.count() == 40
    finally:
        reopened.close()


@pytest.mark.parametrize("frames", [False, True])
def test_batched_packing_keeps_order_and_bounds_packs(tmp_path: Path, frames: bool) -> None:
    """Records compressed and written a batch at a time land in add order, each pack
    ending at the first record (or frame) that reaches ``pack_size`` (as one record at a
    time did)."""
    Vault.create(tmp_path, b"k", FAST_KDF, frames=frames)
    pack_size = 20_000
    vault = Vault.open(tmp_path, b"k", writable=True, pack_size=pack_size)
    rng = random.Random(7)
    contents = [rng.randbytes(rng.randrange(100, 6000)) for _ in range(150)]
    try:
        ids = [i for i, _ in vault.put_many(b"M", contents)]
        vault.flush()
        assert [vault.get(i) for i in ids] == contents
        refs = list(vault.index.records())
        by_pack: dict[str, list[RecordRef]] = {}
        for ref in refs:
            by_pack.setdefault(ref.pack, []).append(ref)
        order = {blob_id: n for n, blob_id in enumerate(ids)}
        packs = sorted(by_pack.values(), key=lambda rs: order[rs[0].blob_id])
        assert [order[r.blob_id] for rs in packs for r in rs] == list(range(150))
        for records in packs[:-1]:
            ends = sorted({r.offset + RECORD_HEAD + r.length for r in records})  # one a frame
            assert len(ends) == len(records) or frames
            assert ends[-1] >= pack_size > ([0, *ends][-2])  # full exactly at its last record
        empty, stored = vault.put(b"M", b"")  # alone in its batch, which zstd's batch call
        vault.flush()  # refuses: compressed on its own
        assert stored and vault.get(empty) == b""
    finally:
        vault.close()


@pytest.mark.parametrize("frames", [False, True])
@pytest.mark.parametrize("pack_hash", ["blake3", "sha256"])
def test_packs_are_named_by_the_hash_of_their_bytes_on_disk(
    tmp_path: Path, pack_hash: str, frames: bool
) -> None:
    """The packer seals each batch into one reused block and hashes it as it is written:
    batches that grow, shrink and hold one record far above the batch size still leave
    every record readable and every pack named by the hash of the file (what verify
    checks), in both the BLAKE3 and the SHA-256 vault formats, records alone or framed."""
    keys = Keys(os.urandom(32), os.urandom(32), "blake3", pack_hash, frames)
    rng = random.Random(11)
    sizes = [rng.randrange(10, 3000) for _ in range(40)] + [50_000] + [200] * 30
    contents = [rng.randbytes(n // 2) + bytes(n - n // 2) for n in sizes]
    ids = keys.blob_ids(contents)
    packer = BackgroundPacker(tmp_path, keys, 12_000, batch_bytes=8_000, batch_count=5)
    published = []
    records = [(b"M", i, c) for i, c in zip(ids, contents, strict=True)]
    for start in range(0, len(records), 7):
        published += packer.add_many(records[start : start + 7])
    published += packer.flush()
    assert len(published) >= 4
    seen = {}
    for name, size, packed in published:
        path = pack_path(tmp_path, name)
        assert hash_file(path, pack_hash) == name and path.stat().st_size == size
        for kind, blob_id, offset, length, part_offset, part_length in packed:
            head_kind, head_id, sealed = read_record(path, offset, length)
            table = b""
            if frames:
                assert head_kind == FRAME and part_offset is not None and part_length is not None
                table, sealed = sealed[: parse_table(sealed)[1]], sealed[parse_table(sealed)[1] :]
            plain = keys.open(sealed, head_kind + head_id + table)
            content = zstandard.ZstdDecompressor().decompress(plain)
            if frames:
                content = content[part_offset : part_offset + part_length]
            else:
                assert (head_kind, head_id, part_offset) == (kind, blob_id, None)
            seen[blob_id] = content
    assert [seen[i] for i in ids] == contents


def test_an_index_failure_on_the_publishing_thread_keeps_the_published_packs(
    tmp_path: Path,
) -> None:
    """Packs are indexed by the thread that publishes them, right after the rename: an
    index that refuses the rows (here SQLite's ``query_only``) fails the run with one
    line, the packs already published stay, and the next writer indexes them."""
    Vault.create(tmp_path, b"k", FAST_KDF)
    rng = random.Random(3)
    contents = [rng.randbytes(3000) for _ in range(30)]
    vault = Vault.open(tmp_path, b"k", writable=True, pack_size=20_000)
    vault.index.db.execute("PRAGMA query_only = ON")
    with pytest.raises(VaultError, match=r"index\.sqlite: .*readonly.*indexed at the next run"):
        vault.put_many(b"M", contents)
        vault.flush()
    vault.close()
    assert list((tmp_path / "packs").glob("*/*"))  # published before the index refused them
    assert not list((tmp_path / "packs").glob(".tmp-*"))
    with Vault.open(tmp_path, b"k", writable=True) as reopened:
        assert reopened.index.count() > 0  # re-indexed from the pack headers
        stored = reopened.put_many(b"M", contents)
        reopened.flush()
        assert all(reopened.get(i) == c for (i, _), c in zip(stored, contents, strict=True))
        assert verify(reopened).ok
