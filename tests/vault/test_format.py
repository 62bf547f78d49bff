"""The vault format without a mail server: packs, sealing, trees, settings."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.vault.crypto import CONTENT_IDS, DEFAULT_KDF, PACK_HASHES, Keys
from vigile.vault.errors import VaultConfigError, VaultDamagedError, VaultError, WrongKeyError
from vigile.vault.imap import message_set, parse_internaldate
from vigile.vault.pack import scan_pack
from vigile.vault.repo import Vault
from vigile.vault.settings import parse_settings
from vigile.vault.snapshot import STAMP, FolderTree, MessageEntry, Snapshot
from vigile.vault.verify import verify

FAST_KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_any_bytes_scan_as_records_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "pack"
    path.write_bytes(b"VGPACK\x00\x01" + data)
    try:
        records = list(scan_pack(path))
    except ValueError as e:
        assert "byte" in str(e)
        return
    assert all(r.kind in (b"M", b"T") for r in records)


@settings(max_examples=50)
@given(st.binary(max_size=2000), st.binary(min_size=1, max_size=8))
def test_seal_round_trip_and_any_change_fails(content: bytes, aad: bytes) -> None:
    keys = Keys.generate()
    sealed = keys.seal(content, aad)
    assert keys.open(sealed, aad) == content
    for pos in (0, len(sealed) // 2, len(sealed) - 1):
        flipped = bytearray(sealed)
        flipped[pos] ^= 1
        with pytest.raises(VaultDamagedError):
            keys.open(bytes(flipped), aad)
    with pytest.raises(VaultDamagedError):
        keys.open(sealed, aad + b"x")


names = st.text(min_size=1, max_size=20)
entries = st.builds(
    MessageEntry,
    uid=st.integers(1, 2**32 - 1),
    blob_id=st.binary(min_size=32, max_size=32),
    size=st.integers(0, 2**31),
    internaldate=st.datetimes(timezones=st.just(UTC)),
    flags=st.lists(st.sampled_from(["\\Seen", "\\Flagged", "$Label1", "Ünï"]), unique=True)
    .map(sorted)
    .map(tuple),
    sender=st.text(max_size=40),
    subject=st.text(max_size=40),
    message_id=st.text(max_size=40),
)


@given(names, st.integers(1, 2**32 - 1), st.lists(entries, max_size=20))
def test_tree_round_trip(name: str, uidvalidity: int, items: list[MessageEntry]) -> None:
    tree = FolderTree(name, uidvalidity, {m.uid: m for m in items})
    assert FolderTree.decode(tree.encode()) == tree


def test_dedup_and_wrong_secret(tmp_path: Path) -> None:
    root = tmp_path / "v"
    Vault.create(root, b"pw", FAST_KDF)
    with pytest.raises(VaultError, match="already exists"):
        Vault.create(root, b"pw", FAST_KDF)
    with pytest.raises(WrongKeyError):
        Vault.open(root, b"other")
    vault = Vault.open(root, b"pw", writable=True)
    try:
        first = vault.put(b"M", b"same message")
        assert vault.put(b"M", b"same message") == (first[0], False)
        vault.flush()
        assert vault.get(first[0]) == b"same message"
        assert vault.index.count() == 1
    finally:
        vault.close()


def test_settings_validate_accounts(tmp_path: Path) -> None:
    base = tmp_path / "vigile.toml"
    good = {"name": "a", "host": "mail.example.org", "username": "a"}
    parsed = parse_settings({"path": "v", "accounts": [good]}, base)
    assert parsed.path == tmp_path / "v" and parsed.accounts[0].port == 993
    assert "secret" not in repr(parsed.accounts[0])
    for bad, message in (
        ({**good, "security": "plain"}, "only to a loopback"),
        ({**good, "auth": "ntlm"}, "auth must be"),
        ({"host": "h", "username": "u"}, "name is required"),
    ):
        with pytest.raises(VaultConfigError, match=message):
            parse_settings({"accounts": [bad]}, base)
    with pytest.raises(VaultConfigError, match="appears twice"):
        parse_settings({"accounts": [good, good]}, base)
    assert parse_settings({"accounts": [{**good, "host": "127.0.0.1", "security": "plain"}]}, base)
    with pytest.raises(VaultConfigError, match="unset"):
        parse_settings({"accounts": [{**good, "password_env": "VIGILE_NOPE_X"}]}, base).accounts[
            0
        ].secret()


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
)
def test_internaldate_parses_what_imap_writes(when: datetime, offset_min: int) -> None:
    zone = timezone(timedelta(minutes=offset_min))
    when = when.replace(microsecond=0, tzinfo=zone)
    sign = "-" if offset_min < 0 else "+"
    text = (
        when.strftime("%d-%b-%Y %H:%M:%S ")
        + f"{sign}{abs(offset_min) // 60:02d}{abs(offset_min) % 60:02d}"
    )
    assert parse_internaldate(text.encode()) == when


@given(st.lists(st.integers(1, 500), min_size=1, unique=True))
def test_message_set_names_exactly_the_uids(uids: list[int]) -> None:
    named: set[int] = set()
    for part in message_set(uids).split(","):
        low, _, high = part.partition(":")
        named.update(range(int(low), int(high or low) + 1))
    assert named == set(uids)


def test_the_commented_example_in_the_default_config_parses(tmp_path: Path) -> None:
    import tomllib

    from vigile.config import DEFAULT_CONFIG

    example = "\n".join(
        line[2:] for line in DEFAULT_CONFIG.split("# [vault]", 1)[1].splitlines() if line
    )
    section = tomllib.loads("[vault]\n" + example)["vault"]
    settings = parse_settings(section, tmp_path / "vigile.toml")
    assert settings.accounts[0].name == "alice" and settings.key_file is not None


@pytest.mark.parametrize("content_id", CONTENT_IDS)
def test_content_id_algorithm_is_recorded_and_authenticated(
    tmp_path: Path, content_id: str
) -> None:
    root = tmp_path / "v"
    # Packs named, and records written, as before versions 4 and 5.
    Vault.create(root, b"pw", FAST_KDF, content_id, "sha256", frames=False)
    config = json.loads((root / "config").read_bytes())
    # Format version 1 (what earlier releases read) for HMAC-SHA256; 2 names the algorithm.
    assert (config["version"], config.get("content_id", "hmac-sha256")) == (
        (1, "hmac-sha256") if content_id == "hmac-sha256" else (2, content_id)
    )
    with Vault.open(root, b"pw", writable=True) as vault:
        ident = vault.keys.ident
        blob_id, _ = vault.put(b"M", b"a message")
    reference = {  # the algorithms as their libraries define them
        "blake3": blake3.blake3(b"a message", key=ident).digest(),
        "hmac-sha256": hmac.new(ident, b"a message", hashlib.sha256).digest(),
    }
    assert blob_id == reference[content_id]
    other = next(c for c in CONTENT_IDS if c != content_id)
    swapped = dict(config, content_id=other, version=2)
    (root / "config").write_text(json.dumps(swapped))
    with pytest.raises(WrongKeyError):  # the algorithm is sealed with the keys
        Vault.open(root, b"pw")
    (root / "config").write_text(json.dumps(dict(config, version=99)))
    with pytest.raises(VaultError, match="format version 99"):
        Vault.open(root, b"pw")


def test_latest_snapshot_opens_the_newest_first(tmp_path: Path) -> None:
    """Finding an account's newest snapshot (at or before a time) gives what a scan of
    every snapshot gives, while opening only the newest few (backups under cron)."""
    root = tmp_path / "v"
    Vault.create(root, b"pw", FAST_KDF)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Vault.open(root, b"pw", writable=True) as vault:
        for hour in range(48):
            for account in ("alice", "bob"):
                when = t0 + timedelta(hours=hour, microseconds=hour * 1000)
                name = f"{when.strftime(STAMP)}-{account}{hour:02d}"
                vault.save_snapshot(Snapshot(name, account, when, ()))
        # Two of alice's in one second: the later time wins, as in a full scan.
        for micro in (500, 900):
            when = t0 + timedelta(hours=50, microseconds=micro)
            vault.save_snapshot(Snapshot(f"{when.strftime(STAMP)}-x{micro}", "alice", when, ()))
        with _snapshots_opened(vault) as opened:
            for account in ("alice", "bob", "carol"):
                for at in (None, t0 + timedelta(hours=20, minutes=30), t0 - timedelta(hours=1)):
                    opened.clear()
                    got = vault.latest_snapshot(account, at)
                    if got is not None:  # the few newer ones and its own second, not all 98
                        assert len(opened) <= 5, opened
                    scan = [s for s in vault.snapshots(account) if at is None or s.time <= at]
                    assert got == (scan[-1] if scan else None)
        assert vault.latest_snapshot("alice").time.microsecond == 900


@pytest.mark.parametrize("pack_hash", PACK_HASHES)
def test_pack_hash_is_recorded_authenticated_and_names_the_packs(
    tmp_path: Path, pack_hash: str
) -> None:
    root = tmp_path / "v"
    Vault.create(root, b"pw", FAST_KDF, pack_hash=pack_hash, frames=False)  # before version 5
    config = json.loads((root / "config").read_bytes())
    assert (config["version"], config.get("pack_hash", "sha256")) == (
        (4, "blake3") if pack_hash == "blake3" else (2, "sha256")
    )
    with Vault.open(root, b"pw", writable=True) as vault:
        assert vault.keys.pack_hash == pack_hash
        vault.put(b"M", b"a message")
        vault.flush()
        assert verify(vault).ok
    (pack,) = root.glob("packs/*/*")
    reference = {  # the hashes as their libraries define them
        "blake3": blake3.blake3(pack.read_bytes()).hexdigest(),
        "sha256": hashlib.sha256(pack.read_bytes()).hexdigest(),
    }
    assert pack.name == reference[pack_hash]
    other = next(h for h in PACK_HASHES if h != pack_hash)
    (root / "config").write_text(json.dumps(dict(config, pack_hash=other, version=4)))
    with pytest.raises(WrongKeyError):  # the pack hash is sealed with the keys
        Vault.open(root, b"pw")
    (root / "config").write_text(json.dumps(dict(config, pack_hash="md5", version=4)))
    with pytest.raises(VaultError, match="pack hash 'md5'"):
        Vault.open(root, b"pw")


def test_look_ups_do_not_wait_for_a_pack_being_indexed(tmp_path: Path) -> None:
    """A writable vault's look-ups read the last committed index on their own connection:
    a pack's rows being inserted (its transaction open, under the index lock) neither
    block a look-up nor show in it; they show once committed. Closed, the index file is
    back in rollback-journal mode, with no log files left beside it."""
    Vault.create(tmp_path / "v", b"pw", FAST_KDF)
    store = Vault.open(tmp_path / "v", b"pw", writable=True)
    known, _ = store.put(b"M", b"stored before")
    store.flush()
    index, new_id = store.index, b"\x01" * 32
    inserted, release = threading.Event(), threading.Event()

    def index_a_pack_slowly() -> None:
        with index._lock, index.db:  # as add_pack holds them
            index.db.execute("INSERT INTO packs (name, size) VALUES ('p', 1)")
            index.db.execute(
                "INSERT INTO blobs (id, kind, pack, offset, length) "
                "VALUES (?, 'M', (SELECT n FROM packs WHERE name = 'p'), 8, 1)",
                (new_id,),
            )
            inserted.set()
            release.wait(10)

    writer = threading.Thread(target=index_a_pack_slowly)
    writer.start()
    try:
        assert inserted.wait(10)
        with ThreadPoolExecutor(1) as pool:  # a look-up that waited would time out here
            found = pool.submit(index.existing, [known, new_id]).result(timeout=5)
        assert found == {known}
    finally:
        release.set()
        writer.join()
    assert index.existing([known, new_id]) == {known, new_id}
    store.close()
    db = sqlite3.connect(tmp_path / "v" / "index.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()
    assert not list((tmp_path / "v").glob("index.sqlite-*"))


def test_one_accounts_snapshots_open_only_its_own(tmp_path: Path) -> None:
    """Snapshot names carry a keyed tag of the account: listing one account's snapshots
    opens its own and the untagged ones of earlier releases, never another account's;
    the tag is no account name, and a file renamed to another tag does not open."""
    root = tmp_path / "v"
    Vault.create(root, b"pw", FAST_KDF)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Vault.open(root, b"pw", writable=True) as vault:
        for hour in range(6):
            when = t0 + timedelta(hours=hour)
            for account in ("alice", "bob", "carol"):
                vault.save_snapshot(Snapshot(vault.snapshot_name(account, when), account, when, ()))
        old = t0 - timedelta(days=1)  # as earlier releases named them: no tag
        for account in ("alice", "bob"):
            name = f"{old.strftime(STAMP)}-{os.urandom(4).hex()}"
            vault.save_snapshot(Snapshot(name, account, old, ()))
        names = sorted(p.name for p in (root / "snapshots").iterdir())
        assert not any(a in n for n in names for a in ("alice", "bob", "carol"))
        with _snapshots_opened(vault) as opened:
            everything = vault.snapshots()
            for account in ("alice", "bob", "carol", "dave"):
                opened.clear()
                mine = vault.snapshots(account)
                assert mine == [s for s in everything if s.account == account]
                assert len(opened) == (6 if account != "dave" else 0) + 2
        alice = vault.snapshots("alice")[-1].name
        bob_tag = vault.keys.account_tag("bob")
        moved = root / "snapshots" / alice.replace(alice.split("-")[1], bob_tag)
        (root / "snapshots" / alice).rename(moved)
        with pytest.raises(VaultDamagedError, match="authentication"):
            vault.snapshots("bob")


def test_newest_snapshots_count_by_name_and_open_the_newest(tmp_path: Path) -> None:
    """Per account, the count and the newest snapshot that a scan of every snapshot
    gives, opening only each tag's newest second and the names of earlier releases."""
    root = tmp_path / "v"
    Vault.create(root, b"pw", FAST_KDF)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Vault.open(root, b"pw", writable=True) as vault:
        for day in range(40):
            for account in ("alice", "bob", "carol"):
                when = t0 + timedelta(days=day, microseconds=day)
                vault.save_snapshot(Snapshot(vault.snapshot_name(account, when), account, when, ()))
        late = t0 + timedelta(days=50)
        for micro in (900, 500):  # two of bob's in his newest second: the later time wins
            when = late + timedelta(microseconds=micro)
            vault.save_snapshot(Snapshot(vault.snapshot_name("bob", when), "bob", when, ()))
        for account in ("alice", "dave"):  # as earlier releases named them: no tag
            when = t0 + timedelta(days=60)
            name = f"{when.strftime(STAMP)}-{os.urandom(4).hex()}"
            vault.save_snapshot(Snapshot(name, account, when, ()))
        with _snapshots_opened(vault) as opened:
            got = vault.newest_snapshots()
        assert len(opened) == 1 + 2 + 1 + 2  # alice, bob's second, carol, the untagged
        everything = vault.snapshots()
        expected = {
            a: (len(mine), mine[-1])
            for a in ("alice", "bob", "carol", "dave")
            if (mine := [s for s in everything if s.account == a])
        }
        assert got == expected
        assert got["bob"][1].time.microsecond == 900 and got["alice"][0] == 41
        # A file renamed to another account's tag fails to open, as in any listing.
        carol = vault.snapshots("carol")[-1].name
        moved = carol.replace(carol.split("-")[1], vault.keys.account_tag("alice"))
        (root / "snapshots" / carol).rename(root / "snapshots" / moved)
        with pytest.raises(VaultDamagedError, match="authentication"):
            vault.newest_snapshots()


@contextmanager
def _snapshots_opened(vault: Vault) -> Iterator[list[str]]:
    """The names of the snapshot files ``vault`` opens inside the block, in order."""
    opened: list[str] = []
    load = vault._load_snapshot

    def counting(path: Path) -> Snapshot:
        opened.append(path.name)
        return load(path)

    vault._load_snapshot = counting  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        vault._load_snapshot = load  # type: ignore[method-assign]
