"""Regenerate a golden vault: ``python -m tests.golden.vault.regenerate FORMAT`` from the root.

The golden vaults pin the on-disk format: a vault written by a version must stay readable
(and writable) by every later one. One per content-id algorithm (``GOLDEN``): ``vault``
was written by format version 1 (HMAC-SHA256 ids), ``vault-blake3`` by version 2.
Regenerate only on a deliberate format change (and bump ``version`` in the vault config);
review the diff of ``expected/``, which every golden vault restores to.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from vigile.vault.crypto import DEFAULT_KDF
from vigile.vault.repo import Vault
from vigile.vault.snapshot import FolderRef, FolderTree, MessageEntry, Snapshot

HERE = Path(__file__).resolve().parent
SECRET = b"golden vault passphrase"
KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)
#: Golden vault folder -> the content-id algorithm it was written with.
GOLDEN = {"vault": "hmac-sha256", "vault-blake3": "blake3"}
MESSAGES = {
    "INBOX": [
        (
            b"From: =?utf-8?q?Zo=C3=AB?= <z@example.org>\r\nSubject: un\r\n\r\nbonjour\r\n",
            ("\\Seen",),
        ),
        (b"From: b@example.org\r\nSubject: two\r\n\r\nsame body twice\r\n", ()),
    ],
    "Archiv/Été": [
        (b"From: b@example.org\r\nSubject: two\r\n\r\nsame body twice\r\n", ("\\Flagged",)),
    ],
}


def main(content_id: str) -> None:
    root = HERE / next(name for name, algo in GOLDEN.items() if algo == content_id)
    shutil.rmtree(root, ignore_errors=True)
    Vault.create(root, SECRET, KDF, content_id)
    vault = Vault.open(root, SECRET, writable=True)
    when = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    refs = []
    for folder, items in MESSAGES.items():
        entries = {}
        for uid, (raw, flags) in enumerate(items, start=1):
            blob_id, _ = vault.put(b"M", raw)
            entries[uid] = MessageEntry(uid, blob_id, len(raw), when, flags)
        tree_id = vault.put_tree(FolderTree(folder, 42, entries))
        refs.append(FolderRef(folder, 42, len(items) + 1, 7, len(items), tree_id))
    vault.save_snapshot(Snapshot("20240301T120000-golden", "alice", when, tuple(refs), {}))
    vault.close()
    (root / "index.sqlite").unlink()  # a cache: the reader must rebuild it from the packs
    (root / "lock").unlink()
    expected = HERE / "expected"
    shutil.rmtree(expected, ignore_errors=True)
    listing = []
    for folder, items in MESSAGES.items():
        for uid, (raw, flags) in enumerate(items, start=1):
            path = expected / folder.replace("/", "%2F") / f"{uid}.eml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
            listing.append({"folder": folder, "uid": uid, "flags": list(flags)})
    (expected / "listing.json").write_text(json.dumps(listing, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
