"""A real mail vault for the console's Backups tests: three accounts on the test Dovecot.

``alice`` is backed up twice, now (35 messages in INBOX, Archive and Été, then an
incremental run that fetches nothing); ``bob`` once, three days ago (the backup's own
``now``), so he is past the 26 h threshold; ``carol`` is configured and never backed up.
Then the real ``vigile vault verify`` runs, which records its outcome in the vault. The
vault is a key-file vault; ``vigile.toml`` names it, the key file and the accounts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.vault.dovecot import PASSWORD, Dovecot, account_toml
from tests.vault.mailgen import fill, open_client
from typer.testing import CliRunner

from vigile.cli import app
from vigile.vault.backup import backup_account
from vigile.vault.crypto import key_file_kdf
from vigile.vault.imap import ImapSource
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount

FOLDERS = {"INBOX": 20, "Archive": 10, "Été": 5}


@dataclass(frozen=True)
class BackupFacts:
    """Where the vault and its configuration are, and what they hold."""

    folder: Path
    config: Path
    key: bytes
    accounts: dict[str, ImapAccount]
    alice_snapshots: list[str]  # oldest first


def write_config(folder: Path, accounts: list[ImapAccount], vault: str = "", **extra: str) -> Path:
    """``vigile.toml`` with ``[vault]`` (``path = "vault"``, ``key_file = "key"`` unless
    ``extra`` says otherwise) and the accounts."""
    settings = {"path": '"vault"', "key_file": '"key"', **extra}
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items() if v)
    path = folder / f"vigile{vault}.toml"
    path.write_text("[vault]\n" + lines + "".join(map(account_toml, accounts)), encoding="utf-8")
    return path


def _backup(root: Path, key: bytes, acc: ImapAccount, now: datetime | None = None) -> str:
    vault, source = Vault.open(root, key, writable=True, pack_size=256 * 1024), ImapSource(acc)
    try:
        return backup_account(vault, source, now=now)[0].name
    finally:
        source.close()
        vault.close()


def build_backups(dovecot: Dovecot, folder: Path) -> BackupFacts:
    """The vault of the module docstring, in ``folder``."""
    tag = f"bk{os.getpid()}x{folder.name[-6:]}"
    accounts = {
        name: replace(dovecot.add_user(f"{tag}{name}"), name=name)
        for name in ("alice", "bob", "carol")
    }
    for name, boxes, seed in (("alice", FOLDERS, 11), ("bob", {"INBOX": 3}, 3)):
        client = open_client(accounts[name], PASSWORD)
        fill(client, boxes, seed=seed)
        client.logout()
    key = os.urandom(32)
    (folder / "key").write_bytes(key)
    Vault.create(folder / "vault", key, key_file_kdf(key))
    config = write_config(folder, list(accounts.values()))
    bob = _backup(folder / "vault", key, accounts["bob"], datetime.now(UTC) - timedelta(days=3))
    assert bob
    alice = [_backup(folder / "vault", key, accounts["alice"]) for _ in range(2)]
    verified = CliRunner().invoke(app, ["vault", "verify", "--config", str(config)])
    assert verified.exit_code == 0, verified.output
    return BackupFacts(folder, config, key, accounts, alice)
