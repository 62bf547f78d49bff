"""Regenerate the golden vault: ``python -m tests.golden.vault.regenerate`` from the root.

The golden vault pins the on-disk format: a vault written by this version must stay
readable by every later one. Regenerate only on a deliberate format change (and bump
``version`` in the vault config); review the diff of ``expected/``.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from vigile.vault.crypto import DEFAULT_KDF
from vigile.vault.repo import Vault
from vigile.vault.snapshot import FolderRef, FolderTree, MessageEntry, Snapshot

HERE = Path(__file__).resolve().parent
SECRET = b"golden vault passphrase"
KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)
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


def main() -> None:
    root = HERE / "vault"
    shutil.rmtree(root, ignore_errors=True)
    Vault.create(root, SECRET, KDF)
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
    main()
