"""A vault written by an earlier version must stay readable: the golden vaults.

``tests/golden/vault/vault`` (format version 1, HMAC-SHA256 content ids),
``vault-blake3`` (version 2) and ``vault-hkdf`` (version 3, a key file's KEK derived with
HKDF-SHA256) were written by ``tests/golden/vault/regenerate.py``; the
expected restore output sits beside them in ``expected/``. The index is left out on
purpose, so opening a vault also exercises rebuilding the index from the pack headers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.golden.vault.regenerate import GOLDEN as FORMATS
from tests.golden.vault.regenerate import secret_of

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
    (same ids as before), and the vault stays in its own format."""
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / name, root)
    config = (root / "config").read_bytes()
    known = {p.read_bytes() for p in (GOLDEN / "expected").rglob("*.eml")}
    with Vault.open(root, secret_of(name), writable=True) as vault:
        stored = vault.put_many(b"M", [*sorted(known), b"Subject: new\r\n\r\nnew\r\n"])
        vault.flush()
        assert [s for _, s in stored] == [False] * len(known) + [True]
        assert verify(vault).ok and vault.index.count() == 5
    assert (root / "config").read_bytes() == config
    with Vault.open(root, secret_of(name)) as vault:
        assert vault.keys.content_id == content_id
        assert vault.get(stored[-1][0]) == b"Subject: new\r\n\r\nnew\r\n"
