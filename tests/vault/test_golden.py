"""A vault written by an earlier version must stay readable: the golden vault.

``tests/golden/vault/vault`` was written by ``tests/golden/vault/regenerate.py``; the
expected restore output sits beside it in ``expected/``. The index is left out on purpose,
so opening the vault also exercises rebuilding the index from the pack headers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vigile.vault.repo import Vault
from vigile.vault.restore import restore_files
from vigile.vault.verify import verify

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "vault"
SECRET = b"golden vault passphrase"


def test_golden_vault_reads_verifies_and_restores(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    shutil.copytree(GOLDEN / "vault", root)
    vault = Vault.open(root, SECRET, writable=True)
    try:
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
