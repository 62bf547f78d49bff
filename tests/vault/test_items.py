"""Finding one message in a snapshot and bringing it back alone, against the real Dovecot.

The account holds generated mail (RFC 2047 encoded senders and subjects) and three
messages written by hand: a folded, partly encoded subject; no Subject at all; header
names in lower case on the first line. `vault ls` searches them, `vault restore
--message` brings back exactly the messages named (every target), byte for byte with
their flags. Trees written the way earlier releases wrote them still read.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from rich.cells import cell_len
from tests.vault.dovecot import PASSWORD, Dovecot, account_toml
from tests.vault.mailgen import fill, open_client, snapshot_state
from tests.vault.test_faults import SECRET, rows, vigile, write_config

from vigile.vault.headers import VALUE_LIMIT, display, header_fields
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount
from vigile.vault.snapshot import FolderTree, MessageEntry

INVOICE = (
    b"Received: from mx.example.org by mail.example.org; Tue, 17 Nov 2026 09:00:00 +0000\r\n"
    b"From: =?utf-8?q?Soci=C3=A9t=C3=A9_G=C3=A9n=C3=A9rale?= <billing@example.com>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Invoice 2026-11 for\r\n"
    b"\tACME =?utf-8?b?w4lsZWN0cmlxdWU=?=\r\n"
    b"Message-ID: <invoice-2026-11@example.com>\r\n"
    b"\r\n"
    b"Please pay.\r\nSubject: not a header, the body\r\n"
)
NO_SUBJECT = (
    b"From: Nobody <nobody@example.net>\r\n"
    b"Message-Id: <no-subject@example.net>\r\n"
    b"\r\n"
    b"There is no subject line.\r\n"
)
LOWER = b"subject: lower case names\r\nfrom: low@example.net\r\n\r\nx\r\n"


def test_header_fields_as_written() -> None:
    assert header_fields(INVOICE) == (
        "=?utf-8?q?Soci=C3=A9t=C3=A9_G=C3=A9n=C3=A9rale?= <billing@example.com>",
        "Invoice 2026-11 for\tACME =?utf-8?b?w4lsZWN0cmlxdWU=?=",
        "<invoice-2026-11@example.com>",
    )
    assert display(header_fields(INVOICE)[1]) == "Invoice 2026-11 for ACME Électrique"
    assert header_fields(NO_SUBJECT) == (
        "Nobody <nobody@example.net>",
        "",
        "<no-subject@example.net>",
    )
    assert header_fields(LOWER) == ("low@example.net", "lower case names", "")
    assert header_fields(LOWER.replace(b"\r\n", b"\n")) == header_fields(LOWER)
    assert header_fields(b"X: 1\r\nSubject: caf\xc3\xa9 \xff\r\n\r\n")[1] == "café \ufffd"
    long = b"X: 1\r\nSubject: " + "é".encode() * 1000 + b"\r\n\r\n"
    assert header_fields(long)[1] == "é" * (VALUE_LIMIT // 2)
    assert header_fields(b"") == header_fields(b"\r\n\r\nSubject: body") == ("", "", "")
    assert display("=?utf-8?q?broken") == "=?utf-8?q?broken"
    assert display("=?no-such-charset?q?x?=") == "=?no-such-charset?q?x?="


def _unfolded(value: str | None) -> str:
    return "" if value is None else value.replace("\r\n", "").replace("\n", "").strip()


def test_header_fields_agree_with_the_email_parser() -> None:
    from random import Random

    from tests.vault.mailgen import make_message

    rng = Random(5)
    for n, raw in enumerate(
        [INVOICE, NO_SUBJECT, LOWER] + [make_message(rng, i) for i in range(60)]
    ):
        parsed = BytesHeaderParser().parsebytes(raw)
        expected = tuple(_unfolded(parsed.get(k)) for k in ("From", "Subject", "Message-ID"))
        assert header_fields(raw) == expected, n


encoded_words = st.builds(
    lambda charset, enc, text, rest: f"=?{charset}?{enc}?{text}?={rest}",
    st.sampled_from(["utf-8", "iso-8859-1", "no-such", ""]),
    st.sampled_from(["q", "b", "Q", "B", "x"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    st.text(max_size=10),
)


@given(st.lists(st.one_of(encoded_words, st.text(max_size=20)), max_size=4).map(" ".join))
def test_display_of_any_value_is_text(value: str) -> None:
    assert isinstance(display(value), str)


@given(st.binary(max_size=3000))
def test_any_bytes_give_three_bounded_values(raw: bytes) -> None:
    fields = header_fields(raw)
    assert len(fields) == 3 and all(len(f) <= VALUE_LIMIT for f in fields)
    assert all(isinstance(display(f), str) for f in fields)


@given(
    st.lists(
        st.sampled_from([b"From", b"Subject", b"Message-ID", b"To", b"from", b"X"]), max_size=6
    ),
    st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30), max_size=6),
)
def test_generated_header_blocks_read_as_the_parser_reads_them(
    names: list[bytes], values: list[str]
) -> None:
    lines = [
        n + b": " + v.encode().replace(b"\r", b"").replace(b"\n", b"").strip()
        for n, v in zip(names, values, strict=False)
    ]
    # A field spelt as usual is taken before the same field in another case, which a
    # mail server never writes; the parser takes the first of either.
    assume(not (b"From" in names and b"from" in names))
    raw = b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"
    parsed = BytesHeaderParser().parsebytes(raw)
    expected = tuple(_unfolded(parsed.get(k)) for k in ("From", "Subject", "Message-ID"))
    assert header_fields(raw) == expected


def test_a_tree_of_an_earlier_release_reads_with_empty_headers() -> None:
    old = {
        "name": "INBOX",
        "uidvalidity": 9,
        "messages": [[4, "ab" * 32, 120, "2026-11-17T09:00:00+00:00", ["\\Seen"]]],
    }
    tree = FolderTree.decode(json.dumps(old).encode())
    entry = tree.messages[4]
    assert (entry.sender, entry.subject, entry.message_id) == ("", "", "")
    assert entry.flags == ("\\Seen",) and entry.size == 120
    again = FolderTree.decode(tree.encode())
    assert again == tree and len(json.loads(tree.encode())["messages"][0]) == 8


def _two_account_config(tmp: Path, account: ImapAccount, other: ImapAccount) -> Path:
    config = write_config(tmp, account)
    with config.open("a", encoding="utf-8") as f:
        f.write(account_toml(other, timeout=10))
    return config


@pytest.fixture
def special(account: ImapAccount) -> ImapAccount:
    """The account: generated mail in INBOX and Été, and the three hand-written messages."""
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 12, "Été": 4}, seed=21)
    when = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    client.append("INBOX", INVOICE, flags=["\\Seen", "$Invoice"], msg_time=when)
    client.append("Été", NO_SUBJECT, flags=["\\Flagged"], msg_time=when)
    client.append("INBOX", LOWER, flags=[], msg_time=when)
    client.logout()
    return account


def _live(account: ImapAccount) -> dict[str, Any]:
    client = open_client(account, PASSWORD)
    try:
        return snapshot_state(client)
    finally:
        client.logout()


def test_find_and_restore_one_message(
    dovecot: Dovecot, special: ImapAccount, tmp_path: Path
) -> None:
    fresh = replace(dovecot.add_user(f"{special.username}into"), name="fresh")
    config = _two_account_config(tmp_path, special, fresh)
    assert vigile(config, "backup", "-a", special.name).returncode == 0
    listed = rows(vigile(config, "ls", "-a", special.name, "--folder", "*", "--json"))
    assert len(listed) == 19 and all(set(r) >= {"from", "subject", "message_id"} for r in listed)
    (invoice,) = rows(vigile(config, "ls", "-a", special.name, "--match", "électrique", "--json"))
    assert invoice["from"] == "Société Générale <billing@example.com>"
    assert invoice["subject"] == "Invoice 2026-11 for ACME Électrique"
    assert invoice["message_id"] == "<invoice-2026-11@example.com>"
    assert (invoice["folder"], set(invoice["flags"].split())) == ("INBOX", {"\\Seen", "$Invoice"})
    (bare,) = [r for r in listed if r["message_id"] == "<no-subject@example.net>"]
    assert (bare["subject"], bare["from"]) == ("", "Nobody <nobody@example.net>")
    both = rows(
        vigile(
            config, "ls", "-a", special.name, "--from", "SOCIÉTÉ", "--subject", "invoice", "--json"
        )
    )
    assert [r["id"] for r in both] == [invoice["id"]]
    assert (
        rows(
            vigile(
                config, "ls", "-a", special.name, "--from", "société", "--subject", "x", "--json"
            )
        )
        == []
    )
    generated = [r for r in listed if r["message_id"].endswith("@example.org>")]
    assert len(generated) == 16 and all("=?" not in r["subject"] for r in generated)
    table = csv.DictReader(
        io.StringIO(vigile(config, "ls", "-a", special.name, "-m", "lower", "--csv").stdout)
    )
    assert [(r["from"], r["subject"], r["message_id"]) for r in table] == [
        ("low@example.net", "lower case names", "")
    ]
    human = vigile(config, "ls", "-a", special.name, "--match", "invoice").stdout
    assert "from" in human and "subject" in human and "Invoice" in human
    # Read by a person at 80 and 120 columns: every id whole on one line, to be copied
    # into `vault restore --message`; the free text cut to the room left.
    for width in ("80", "120"):
        with pytest.MonkeyPatch.context() as terminal:
            terminal.setenv("COLUMNS", width)
            lines = vigile(config, "ls", "-a", special.name, "--folder", "*").stdout.splitlines()
        assert all(cell_len(line) <= int(width) for line in lines)
        assert all(any(r["id"] in line for line in lines) for r in listed), width
        assert any("…" in line for line in lines) and len(lines) < 3 * len(listed), width

    # Item-level restore into another account: exactly these two, byte for byte, flags kept.
    named = [invoice["id"], bare["id"][:10]]
    args = ["restore", "-a", special.name, "--into", "fresh", "--to", "imap"]
    done = vigile(config, *args, "--message", named[0], "--message", named[1], "--json")
    assert done.returncode == 0, done.stderr
    assert rows(done)[0]["restored"] == 2
    before = _live(special)
    restored = _live(fresh)
    assert {k: v for k, v in restored.items() if v} == {
        "INBOX": [m for m in before["INBOX"] if m.raw == INVOICE],
        "Été": [m for m in before["Été"] if m.raw == NO_SUBJECT],
    }
    again = vigile(config, *args, "--message", named[0], "--json")
    assert rows(again)[0]["restored"] == 0 and rows(again)[0]["present"] == 1

    # Dry run on the account itself: the invoice gone, the other untouched.
    client = open_client(special, PASSWORD)
    client.select_folder("INBOX")
    gone = [
        u
        for u, d in client.fetch(client.search("ALL"), ["BODY.PEEK[]"]).items()
        if d[b"BODY[]"] == INVOICE
    ]
    client.delete_messages(gone)
    client.expunge()
    client.logout()
    dry = ["restore", "-a", special.name, "--dry-run", "--json"]
    diff = rows(vigile(config, *dry, "--message", named[0], "--message", named[1]))
    assert [(r["folder"], r["change"], r["subject"]) for r in diff] == [
        ("INBOX", "deleted since", "Invoice 2026-11 for ACME Électrique")
    ]
    done = vigile(config, "restore", "-a", special.name, "--message", named[0])
    assert done.returncode == 0, done.stderr
    assert _live(special) == before

    # Files: only the messages named, exact bytes (Maildir and .eml), flags in the name.
    for fmt in ("eml", "maildir", "mbox"):
        out = tmp_path / fmt
        done = vigile(
            config, "restore", "-a", special.name, "--to", fmt, "--out", str(out), "-m", named[0]
        )
        assert done.returncode == 0, done.stderr
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) == 1, files
        if fmt == "mbox":
            assert files[0].name == "INBOX.mbox" and b"Invoice 2026-11" in files[0].read_bytes()
        else:
            assert files[0].read_bytes() == INVOICE
        if fmt == "maildir":
            assert files[0].name.endswith(":2,S")

    # A wrong id, or one in another folder than --folder, is refused before anything.
    for bad in (["-m", "0123456789abcdef"], ["-m", named[0], "--folder", "Été"], ["-m", "xyz"]):
        done = vigile(
            config,
            "restore",
            "-a",
            special.name,
            "--to",
            "eml",
            "--out",
            str(tmp_path / "no"),
            *bad,
        )
        assert done.returncode != 0 and "--message" in done.stderr, done.stderr
    assert not (tmp_path / "no").exists()


def test_new_and_carried_over_entries_keep_their_headers(
    special: ImapAccount, tmp_path: Path
) -> None:
    config = write_config(tmp_path, special)
    assert vigile(config, "backup").returncode == 0
    client = open_client(special, PASSWORD)
    client.select_folder("INBOX")
    client.add_flags(client.search("ALL")[:3], ["$Reviewed"])  # carried over, re-flagged
    fill(client, {"INBOX": 2}, seed=22, start=900)  # new, fetched by the incremental path
    client.logout()
    again = rows(vigile(config, "backup", "--json"))[0]
    assert again["fetched"] == 2 and again["flag_changes"] == 3
    vault = Vault.open(tmp_path / "vault", SECRET)
    try:
        snap = vault.latest_snapshot(special.name)
        assert snap is not None
        ref = snap.folder("INBOX")
        assert ref is not None
        entries: list[MessageEntry] = list(vault.get_tree(ref.tree).messages.values())
    finally:
        vault.close()
    assert len(entries) == 16
    assert all(e.sender for e in entries)
    assert [e.subject for e in entries if not e.message_id] == ["lower case names"]
    assert sum("$Reviewed" in e.flags for e in entries) == 3
    assert sum(e.message_id.startswith(("<900.", "<901.")) for e in entries) == 2


@contextmanager
def _trees_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[bytes]]:
    """How many times each folder tree is read (decrypted) inside the block, by any
    vault the commands open."""
    read: Counter[bytes] = Counter()
    get_tree = Vault.get_tree

    def counting(self: Vault, tree_id: bytes) -> FolderTree:
        read[tree_id] += 1
        return get_tree(self, tree_id)

    with monkeypatch.context() as patch:
        patch.setattr(Vault, "get_tree", counting)
        yield read


def test_an_item_restore_reads_each_folder_tree_once(
    special: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--message first refuses ids it cannot find, then restores: one read of each
    tree serves both (every target, and the dry run)."""
    config = write_config(tmp_path, special)
    assert vigile(config, "backup", "-a", special.name).returncode == 0
    folders = rows(vigile(config, "ls", "-a", special.name, "--json"))
    listed = rows(vigile(config, "ls", "-a", special.name, "--folder", "*", "--json"))
    named = ["-m", listed[0]["id"], "-m", listed[-1]["id"][:8]]
    assert listed[0]["folder"] != listed[-1]["folder"] and len(folders) >= 2
    runs = {
        "eml": ["--to", "eml", "--out", str(tmp_path / "eml")],
        "imap": [],  # into the account itself: both are there already
        "dry run": ["--dry-run"],
        "unknown id": ["--to", "eml", "--out", str(tmp_path / "no"), "-m", "0123456789abcdef"],
    }
    for what, args in runs.items():
        with _trees_read(monkeypatch) as read:
            done = vigile(config, "restore", "-a", special.name, "--json", *named, *args)
        assert (done.returncode == 0) is (what != "unknown id"), (what, done.stderr)
        assert len(read) == len(folders) and set(read.values()) == {1}, (what, read)
    assert len([p for p in (tmp_path / "eml").rglob("*") if p.is_file()]) == 2
    assert not (tmp_path / "no").exists()
