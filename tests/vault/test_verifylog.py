"""``vigile vault verify`` records its outcome in the vault (``verifylog.py``): sealed,
one new file per run, the newest read back; where it cannot write, one warning line and
the verify's own result unchanged."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.vault.crypto import key_file_kdf
from vigile.vault.errors import VaultDamagedError, VaultError
from vigile.vault.lock import Access
from vigile.vault.repo import Vault
from vigile.vault.verify import VerifyReport
from vigile.vault.verifylog import FOLDER, KEPT_PROBLEMS, last_verification, record_verification


@pytest.fixture
def vault_config(tmp_path: Path) -> Path:
    key = os.urandom(32)
    (tmp_path / "key").write_bytes(key)
    Vault.create(tmp_path / "vault", key, key_file_kdf(key))
    config = tmp_path / "vigile.toml"
    config.write_text('[vault]\npath = "vault"\nkey_file = "key"\n')
    return config


def _open(config: Path) -> Vault:
    root = config.parent
    return Vault.open(root / "vault", (root / "key").read_bytes(), access=Access.READ)


def test_records_are_added_sealed_and_the_newest_is_read(vault_config: Path) -> None:
    vault = _open(vault_config)
    try:
        assert last_verification(vault) is None
        clean = VerifyReport(packs=2, records=40, snapshots=3)
        record_verification(vault, clean, datetime.now(UTC))
        damaged = VerifyReport(packs=2, records=40, snapshots=3)
        for uid in range(KEPT_PROBLEMS + 5):
            damaged.add("message", "alice INBOX", "message damaged or missing", uid=uid)
        name = record_verification(vault, damaged, datetime.now(UTC))
        last = last_verification(vault)
        assert last is not None and last["name"] == name
        assert (last["ok"], last["problems"], len(last["first_problems"])) == (
            False,
            KEPT_PROBLEMS + 5,
            KEPT_PROBLEMS,
        )
        folder = vault.root / FOLDER
        assert len(list(folder.iterdir())) == 2
        assert b"alice" not in (folder / name).read_bytes()  # sealed
        data = bytearray((folder / name).read_bytes())
        data[-1] ^= 1
        (folder / name).write_bytes(bytes(data))
        with pytest.raises(VaultDamagedError, match="authentication tag"):
            last_verification(vault)
    finally:
        vault.close()


def test_verify_command_records_or_warns(vault_config: Path) -> None:
    done = CliRunner().invoke(app, ["vault", "verify", "--config", str(vault_config)])
    assert done.exit_code == 0, done.output
    vault = _open(vault_config)
    try:
        last = last_verification(vault)
    finally:
        vault.close()
    assert last is not None and last["ok"] and last["finished"] >= last["started"]

    folder = vault_config.parent / "vault" / FOLDER
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("not a folder")  # the record cannot be written
    done = CliRunner().invoke(app, ["vault", "verify", "--config", str(vault_config)])
    assert done.exit_code == 0, done.output
    assert "warning:" in done.stderr and "cannot record the verification" in done.stderr
    vault = _open(vault_config)
    try:
        with pytest.raises(VaultError):
            record_verification(vault, VerifyReport(), datetime.now(UTC))
    finally:
        vault.close()
