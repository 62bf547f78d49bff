"""A vault written by an earlier version must stay readable: the golden vaults.

``tests/golden/vault/vault`` (format version 1, HMAC-SHA256 content ids),
``vault-blake3`` (version 2), ``vault-hkdf`` (version 3, a key file's KEK derived with
HKDF-SHA256), ``vault-packs-blake3`` (version 4, packs named by BLAKE3) and
``vault-frames`` (version 5, messages in shared frames) were written by
``tests/golden/vault/regenerate.py``; the
expected restore output sits beside them in ``expected/``. The index is left out on
purpose, so opening a vault also exercises rebuilding the index from the pack headers.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.golden.vault.regenerate import FRAMES, secret_of
from tests.golden.vault.regenerate import GOLDEN as FORMATS

from vigile.vault.errors import VaultError
from vigile.vault.index import SCHEMA_VERSION
from vigile.vault.pack import RecordRef, scan_pack
from vigile.vault.repo import Vault
from vigile.vault.restore import restore_files
from vigile.vault.verify import verify

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "vault"


@pytest.mark.parametrize(("name", "content_id"), FORMATS.items())
def test_golden_vault_reads_verifies_and_restores(
    tmp_path: Path, name: str, content_id: str
) -> None:
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / name, root)
    vault = Vault.open(root, secret_of(name), writable=True)
    try:
        assert vault.keys.content_id == content_id
        assert vault.keys.frames == (name in FRAMES)
        assert vault.index.count() == 4  # 2 distinct messages (one in two folders), 2 trees
        assert verify(vault).ok
        (snap,) = vault.snapshots("alice")
        out = tmp_path / "out"
        report = restore_files(vault, snap, "eml", out)
        listing = [
            {"folder": ref.name, "uid": m.uid, "flags": list(m.flags)}
            for ref in snap.folders
            for m in sorted(vault.get_tree(ref.tree).messages.values(), key=lambda m: m.uid)
        ]
    finally:
        vault.close()
    expected = GOLDEN / "expected"
    assert report.restored == 3 and not report.damaged
    assert listing == json.loads((expected / "listing.json").read_text())
    got = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.eml")}
    want = {p.relative_to(expected): p.read_bytes() for p in expected.rglob("*.eml")}
    assert got == want


@pytest.mark.parametrize(("name", "content_id"), FORMATS.items())
def test_writing_to_an_earlier_vault_keeps_its_content_ids(
    tmp_path: Path, name: str, content_id: str
) -> None:
    """A backup into a vault made by an earlier release dedups against what is there
    (same ids as before), and the vault stays in its own format: a vault before format
    version 5 gets records of their own, never frames."""
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / name, root)
    config = (root / "config").read_bytes()
    known = {p.read_bytes() for p in (GOLDEN / "expected").rglob("*.eml")}
    with Vault.open(root, secret_of(name), writable=True) as vault:
        stored = vault.put_many(b"M", [*sorted(known), b"Subject: new\r\n\r\nnew\r\n"])
        vault.flush()
        assert [s for _, s in stored] == [False] * len(known) + [True]
        assert verify(vault).ok and vault.index.count() == 5
        framed = {r.blob_id for r in vault.index.records() if r.part_offset is not None}
    assert framed == ({stored[-1][0], *(i for i, _ in stored)} if name in FRAMES else set())
    assert (root / "config").read_bytes() == config
    with Vault.open(root, secret_of(name)) as vault:
        assert vault.keys.content_id == content_id
        assert vault.get(stored[-1][0]) == b"Subject: new\r\n\r\nnew\r\n"


#: The index as releases before schema version 2 wrote it: each record names its pack.
INDEX_V1 = """
CREATE TABLE IF NOT EXISTS packs (name TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY, kind BLOB NOT NULL, pack TEXT NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_pack ON blobs (pack);
"""


def test_an_index_of_version_1_is_converted_at_open(tmp_path: Path) -> None:
    """An index written before records referred to packs by number is converted in place
    the first time it is opened, read-only opens included (they do not re-index)."""
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / "vault-hkdf", root)
    db = sqlite3.connect(root / "index.sqlite")
    with db:
        db.executescript(INDEX_V1)
        for path in (root / "packs").glob("*/*"):
            db.execute("INSERT INTO packs VALUES (?, ?)", (path.name, path.stat().st_size))
            db.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?, ?, ?)",
                ((r.blob_id, r.kind, r.pack, r.offset, r.length) for r in scan_pack(path)),
            )
    db.close()
    _opens_converted(root, "vault-hkdf", tmp_path / "out")
    db = sqlite3.connect(root / "index.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} == {
        "packs",
        "blobs",
        "blobs_pack",
        "sqlite_autoindex_packs_1",
    }
    db.close()


#: The index as releases before schema version 3 wrote it: no place in a frame.
INDEX_V2 = """
CREATE TABLE packs (n INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL);
CREATE TABLE blobs (
    id BLOB PRIMARY KEY, kind BLOB NOT NULL, pack INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blobs_pack ON blobs (pack);
PRAGMA user_version = 2;
"""


def test_an_index_of_version_2_is_converted_at_open(tmp_path: Path) -> None:
    """An index written before frames gets the two columns that place a record in its
    frame, empty (each of its records is a record of its own), in place at open."""
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / "vault-packs-blake3", root)
    db = sqlite3.connect(root / "index.sqlite")
    with db:
        db.executescript(INDEX_V2)
        for path in (root / "packs").glob("*/*"):
            n = db.execute(
                "INSERT INTO packs (name, size) VALUES (?, ?)", (path.name, path.stat().st_size)
            ).lastrowid
            db.executemany(
                f"INSERT INTO blobs VALUES (?, ?, {n}, ?, ?)",
                ((r.blob_id, r.kind, r.offset, r.length) for r in scan_pack(path)),
            )
    db.close()
    records = _opens_converted(root, "vault-packs-blake3", tmp_path / "out")
    assert all(r.part_offset is None for r in records)
    db = sqlite3.connect(root / "index.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    columns = [r[1] for r in db.execute("PRAGMA table_info(blobs)")]
    assert columns[-2:] == ["part_offset", "part_length"]
    db.close()


def _scanned(root: Path) -> list[RecordRef]:
    return [r for path in (root / "packs").glob("*/*") for r in scan_pack(path)]


def _opens_converted(root: Path, golden: str, out: Path) -> list[RecordRef]:
    """Open the vault read-only (no recovery, no re-index): its index lists every record
    its packs hold, it verifies, and alice's snapshot restores; the index's records."""
    want = sorted((r.blob_id, r.pack, r.offset, r.length) for r in _scanned(root))
    with Vault.open(root, secret_of(golden)) as vault:
        records = list(vault.index.records())
        got = sorted((r.blob_id, r.pack, r.offset, r.length) for r in records)
        assert got == want and len(got) == 4
        assert verify(vault).ok
        (snap,) = vault.snapshots("alice")
        assert restore_files(vault, snap, "eml", out).restored == 3
    return records


def test_an_index_that_cannot_be_prepared_is_one_clear_error(tmp_path: Path) -> None:
    """An index file SQLite cannot use (damaged here; a version 1 index on read-only media
    takes the same path) stops the command with one line naming it."""
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / "vault-hkdf", root)
    (root / "index.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(VaultError, match=r"index\.sqlite: cannot prepare the index: file is not"):
        Vault.open(root, secret_of("vault-hkdf"))
