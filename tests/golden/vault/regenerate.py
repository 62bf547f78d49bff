"""Regenerate a golden vault: ``python -m tests.golden.vault.regenerate NAME`` from the root.

The golden vaults pin the on-disk format: a vault written by a version must stay readable
(and writable) by every later one. One per format version (``GOLDEN``): ``vault`` was
written by format version 1 (HMAC-SHA256 ids), ``vault-blake3`` by version 2 (BLAKE3 ids),
both under a passphrase (argon2id); ``vault-hkdf`` by version 3, under a key file
(HKDF-SHA256; its key is ``KEY_FILE`` below); ``vault-packs-blake3`` by version 4 (packs
named by BLAKE3 instead of SHA-256), under the same key file; ``vault-frames`` by version 5
(messages several to a zstd frame), under the same key file.
Regenerate only on a deliberate format change (and bump ``version`` in the vault config);
review the diff of ``expected/``, which every golden vault restores to.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from vigile.vault.crypto import DEFAULT_KDF, KEY_FILE_KDF
from vigile.vault.repo import Vault
from vigile.vault.snapshot import FolderRef, FolderTree, MessageEntry, Snapshot

HERE = Path(__file__).resolve().parent
SECRET = b"golden vault passphrase"
KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)
#: The key file of ``vault-hkdf``: 32 fixed bytes (a real key file is random).
KEY_FILE = bytes.fromhex("5f1c0b9e6a2d4e8f7a3b1c9d0e2f4a6b8c0d1e3f5a7b9c1d3e5f7a9b1c3d5e7f")
#: Golden vault folder -> the content-id algorithm it was written with.
GOLDEN = {
    "vault": "hmac-sha256",
    "vault-blake3": "blake3",
    "vault-hkdf": "blake3",
    "vault-packs-blake3": "blake3",
    "vault-frames": "blake3",
}
#: Golden vault folder -> its secret and KDF, where not the passphrase's.
KEYS = {
    "vault-hkdf": (KEY_FILE, KEY_FILE_KDF),
    "vault-packs-blake3": (KEY_FILE, KEY_FILE_KDF),
    "vault-frames": (KEY_FILE, KEY_FILE_KDF),
}
#: Golden vault folder -> the hash its packs are named by, where not SHA-256.
PACK_HASHES = {"vault-packs-blake3": "blake3", "vault-frames": "blake3"}
#: Golden vaults whose messages share frames (format version 5).
FRAMES = {"vault-frames"}


def secret_of(name: str) -> bytes:
    """The secret that opens the golden vault ``name``."""
    return KEYS.get(name, (SECRET, KDF))[0]


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


def main(name: str) -> None:
    root = HERE / name
    shutil.rmtree(root, ignore_errors=True)
    secret, kdf = KEYS.get(name, (SECRET, KDF))
    pack_hash = PACK_HASHES.get(name, "sha256")
    Vault.create(root, secret, kdf, GOLDEN[name], pack_hash, frames=name in FRAMES)
    vault = Vault.open(root, secret, writable=True)
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
