"""How the vault secret becomes the key-encryption key: argon2id for a passphrase (and for
every vault before format version 3), HKDF-SHA256 for a key file of 32 random bytes or more."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from typer.testing import CliRunner

from vigile.cli import app
from vigile.vault.crypto import DEFAULT_KDF, KEY_FILE_KDF, MIN_KEY_FILE, Keys, key_file_kdf
from vigile.vault.errors import VaultError, WrongKeyError
from vigile.vault.repo import Vault

FAST_KDF = dict(DEFAULT_KDF, memory_kib=1024, time_cost=1)


def config_of(root: Path) -> dict[str, object]:
    return dict(json.loads((root / "config").read_bytes()))


def open_sealed_keys(config: dict[str, object], kek: bytes, aad: bytes) -> bytes:
    """The sealed keys opened with a KEK computed here, from the libraries directly."""
    return Keys(kek, b"").open(base64.b64decode(str(config["keys"])), aad)


def test_a_key_file_vault_derives_its_key_with_hkdf(tmp_path: Path) -> None:
    root, key = tmp_path / "v", os.urandom(32)
    Vault.create(root, key, key_file_kdf(key))
    config = config_of(root)
    assert (config["version"], config["kdf"], config["content_id"]) == (5, KEY_FILE_KDF, "blake3")
    # The KEK is HKDF-SHA256 (RFC 5869) of the key file, as the library defines it, and the
    # KDF's name is authenticated with the sealed keys.
    salt = base64.b64decode(str(config["salt"]))
    kek = HKDF(SHA256(), 32, salt, b"vigile-vault key-encryption key").derive(key)
    aad = b"vigile-vault-keys content_id=blake3 kdf=hkdf-sha256 packs=blake3"
    raw = open_sealed_keys(config, kek, aad)
    with Vault.open(root, key, writable=True) as vault:
        assert raw == vault.keys.data + vault.keys.ident
        blob_id, stored = vault.put(b"M", b"a message")
        vault.flush()
    assert stored
    with Vault.open(root, key) as vault:
        assert vault.get(blob_id) == b"a message"
    for wrong in (os.urandom(32), key[:-1], b"a passphrase"):
        with pytest.raises(WrongKeyError):
            Vault.open(root, wrong)


def test_a_passphrase_and_a_short_key_file_are_stretched_with_argon2id(tmp_path: Path) -> None:
    assert key_file_kdf(os.urandom(MIN_KEY_FILE - 1)) == DEFAULT_KDF
    short = os.urandom(MIN_KEY_FILE - 1)
    with pytest.raises(VaultError, match="31 bytes is too short"):
        Vault.create(tmp_path / "refused", short, KEY_FILE_KDF)
    assert not (tmp_path / "refused" / "config").exists()
    root = tmp_path / "v"
    Vault.create(root, short, dict(key_file_kdf(short), memory_kib=1024, time_cost=1))
    config = config_of(root)
    assert config["version"] == 5 and config["kdf"] == FAST_KDF
    salt = base64.b64decode(str(config["salt"]))
    kek = hash_secret_raw(short, salt, 1, 1024, 4, 32, Type.ID)
    aad = b"vigile-vault-keys content_id=blake3 packs=blake3"
    assert len(open_sealed_keys(config, kek, aad)) == 64
    with Vault.open(root, short) as vault:
        assert vault.keys.content_id == "blake3"


def test_earlier_key_file_vaults_keep_opening_with_argon2id(tmp_path: Path) -> None:
    """A vault made by an earlier release from a key file (argon2id over its bytes, format
    version 2) opens as before, and writing to it leaves its config as it was."""
    root, key = tmp_path / "v", os.urandom(32)
    # As releases before version 4 made it.
    Vault.create(root, key, FAST_KDF, pack_hash="sha256", frames=False)
    before = (root / "config").read_bytes()
    assert config_of(root)["version"] == 2
    with Vault.open(root, key, writable=True) as vault:
        vault.put(b"M", b"mail")
        vault.flush()
    assert (root / "config").read_bytes() == before
    with pytest.raises(WrongKeyError):
        Vault.open(root, os.urandom(32))


def test_the_kdf_cannot_be_swapped_in_the_config(tmp_path: Path) -> None:
    root, key = tmp_path / "v", os.urandom(32)
    Vault.create(root, key, KEY_FILE_KDF)
    config = config_of(root)
    (root / "config").write_text(json.dumps(dict(config, kdf=FAST_KDF)))
    with pytest.raises(WrongKeyError):  # argon2id of the right key, but the wrong KEK
        Vault.open(root, key)
    (root / "config").write_text(json.dumps(dict(config, kdf={"alg": "scrypt"})))
    with pytest.raises(VaultError, match="key derivation 'scrypt' is not one"):
        Vault.open(root, key)


@pytest.mark.parametrize(
    ("secret_of", "alg"),
    [
        ("long key file", "hkdf-sha256"),
        ("short key file", "argon2id"),
        ("passphrase", "argon2id"),
    ],
)
def test_vault_init_picks_the_kdf_by_where_the_secret_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_of: str, alg: str
) -> None:
    (tmp_path / "vigile.toml").write_text('[vault]\npath = "vault"\n')
    args = ["vault", "init", "--config", str(tmp_path / "vigile.toml")]
    if secret_of == "passphrase":
        monkeypatch.setenv("VIGILE_VAULT_PASSPHRASE", "a long enough passphrase, 32+ chars")
    else:
        key = os.urandom(64 if secret_of == "long key file" else 16)
        (tmp_path / "key").write_bytes(key)
        args += ["--key-file", str(tmp_path / "key")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert config_of(tmp_path / "vault")["kdf"]["alg"] == alg  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        b"correct horse battery staple, our office 2024\n",  # a phrase someone chose
        os.urandom(32).hex().encode(),  # random, but the file cannot tell
        base64.b64encode(os.urandom(32)) + b"\n",
        "une phrase de passe accentuée, assez longue".encode(),
    ],
)
def test_a_key_file_that_is_text_is_stretched_like_a_passphrase(text: bytes) -> None:
    assert len(text) >= MIN_KEY_FILE
    assert key_file_kdf(text) == DEFAULT_KDF
    assert key_file_kdf(bytes(range(MIN_KEY_FILE))) == KEY_FILE_KDF  # control bytes: not text
