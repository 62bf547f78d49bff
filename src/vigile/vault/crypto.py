"""Keys and sealing for the vault.

A vault has two random 256-bit keys, drawn once at ``vault init``:

* the *data key* seals every record with AES-256-GCM (``cryptography``'s AEAD), a fresh
  96-bit random nonce per record and the record's kind and id as associated data, so a
  record cannot be moved under another id without the tag failing;
* the *id key* names content: a message's id is a keyed hash (a MAC) of the raw message,
  BLAKE3 in keyed mode for vaults made by ``vault init`` since format version 2,
  HMAC-SHA256 for version 1 vaults (which keep it: ids must stay stable within a vault
  for deduplication). Keying the hash means the vault does not reveal whether it holds a
  message an attacker already has (a plain hash would), while identical messages still
  get identical ids and are stored once. BLAKE3 because it is twice as fast as
  HMAC-SHA256 on mail-sized inputs here (docs/benchmarks.md), and content ids are
  computed on the thread that reads the network.

Both keys are stored in the vault's ``config`` file, sealed under a key-encryption key
(KEK), with the content-id algorithm (``content_id``; absent in version 1: ``hmac-sha256``),
the hash that names packs (``pack_hash``, see below) and the KDF that turns the vault
secret into the KEK (``kdf``):

* ``argon2id`` (RFC 9106) for a passphrase, and for every vault before format version 3
  whatever its secret: a guessable secret must be slow to try;
* ``hkdf-sha256`` (RFC 5869) for a key file of random bytes (``head -c 32 /dev/urandom``),
  at least :data:`MIN_KEY_FILE` of them, since format version 3: 256 random bits need no
  stretching, so opening the vault costs microseconds instead of argon2id's 64 MiB and
  0.15-0.2 CPU-seconds. A key file that is shorter, or that is text (a phrase someone
  may have chosen, or a key written in hex or base64: the file alone cannot tell), is
  still stretched with argon2id, as a passphrase is. The KDF's name is part of the sealed
  keys' associated data in version 3, so editing it in the config fails like a wrong
  secret.

Packs are named by a hash of their bytes (pack.py): SHA-256 up to format version 3,
BLAKE3 (unkeyed) for vaults made since format version 4 (``pack_hash``), a quarter of
SHA-256's CPU time here on a full backup's 115 MB of packs (0.02 against 0.08 s,
docs/benchmarks.md). A vault keeps the hash it was made with; its name is part of the
sealed keys' associated data, like the KDF's.

Vaults made since format version 5 store the records of a backup several to a zstd frame
(``frames``, pack.py); earlier vaults keep being written one record to a frame, as they
always were (so a release before version 5 can still read them). Readers read both kinds
in any vault. The version is not in the keys' associated data: changing it changes only
how new records are written, and every frame is authenticated under the data key.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.utils import Buffer

from vigile.vault.errors import VaultDamagedError, VaultError, WrongKeyError

NONCE_SIZE = 12
TAG_SIZE = 16
ID_SIZE = 32

#: Content-id algorithms, by the name the vault config records; new vaults use the first.
CONTENT_IDS = ("blake3", "hmac-sha256")
#: How packs are named, by the name the vault config records; new vaults use the first.
PACK_HASHES = ("blake3", "sha256")
#: Config format versions this code reads: 1 (HMAC-SHA256 ids), 2 (``content_id`` named),
#: 3 (the KEK derived with HKDF-SHA256 from a key file), 4 (``pack_hash`` named), 5 (records
#: in shared frames, pack.py).
FORMAT_VERSIONS = (1, 2, 3, 4, 5)
#: The first format version whose backups write frames.
FRAMES_VERSION = 5

#: argon2id cost: RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes).
DEFAULT_KDF = {"alg": "argon2id", "time_cost": 3, "memory_kib": 65536, "parallelism": 4}
#: The KDF of a key file of at least :data:`MIN_KEY_FILE` bytes (format version 3).
KEY_FILE_KDF = {"alg": "hkdf-sha256"}
#: The shortest key file taken as a key rather than as a passphrase: 256 bits.
MIN_KEY_FILE = 32
_HKDF_INFO = b"vigile-vault key-encryption key"


@dataclass(frozen=True)
class Keys:
    """The two vault keys (never written anywhere unsealed)."""

    data: bytes
    ident: bytes
    content_id: str = "hmac-sha256"
    pack_hash: str = "sha256"
    #: Whether backups write records several to a frame (format version 5, pack.py).
    frames: bool = False

    @classmethod
    def generate(
        cls, content_id: str = CONTENT_IDS[0], pack_hash: str = PACK_HASHES[0], frames: bool = True
    ) -> Keys:
        if content_id not in CONTENT_IDS:
            raise VaultError(f"unknown content id algorithm {content_id!r}")
        if pack_hash not in PACK_HASHES:
            raise VaultError(f"unknown pack hash {pack_hash!r}")
        return cls(os.urandom(32), os.urandom(32), content_id, pack_hash, frames)

    def blob_id(self, content: bytes) -> bytes:
        """The content address of ``content`` (32 bytes).

        >>> k = Keys(b"d" * 32, b"i" * 32, "blake3")
        >>> k.blob_id(b"mail") == k.blob_id(b"mail") != k.blob_id(b"mail!")
        True
        >>> k.blob_id(b"mail") != Keys(b"d" * 32, b"i" * 32, "hmac-sha256").blob_id(b"mail")
        True
        """
        if self.content_id == "blake3":
            return blake3.blake3(content, key=self.ident).digest()
        # hmac.digest: OpenSSL's one-shot HMAC, without a Python HMAC object per message.
        return hmac.digest(self.ident, content, "sha256")

    def blob_ids(self, contents: list[bytes]) -> list[bytes]:
        """:meth:`blob_id` of each of ``contents`` (one call for a batch).

        >>> k = Keys(b"d" * 32, b"i" * 32, "blake3")
        >>> k.blob_ids([b"a", b"b"]) == [k.blob_id(b"a"), k.blob_id(b"b")]
        True
        """
        if self.content_id != "blake3":
            return [self.blob_id(content) for content in contents]
        new, key = blake3.blake3, self.ident
        return [new(content, key=key).digest() for content in contents]

    def account_tag(self, account: str) -> str:
        """A keyed tag of an account's name (16 hex digits), which its snapshot files'
        names carry so that one account's snapshots are found without opening the
        others'. Without the keys it says nothing about the name.

        >>> k = Keys(b"d" * 32, b"i" * 32)
        >>> k.account_tag("alice") == k.account_tag("alice") != k.account_tag("bob")
        True
        >>> len(k.account_tag("alice")), k.account_tag("alice") != Keys(b"d" * 32,
        ...     b"j" * 32).account_tag("alice")
        (16, True)
        """
        return hmac.digest(self._tag_key, account.encode(), "sha256")[:8].hex()

    @cached_property
    def _tag_key(self) -> bytes:
        # A key of its own, derived from the id key, so that no tag can equal a message id.
        return hmac.digest(self.ident, b"vigile-vault snapshot account tags", "sha256")

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self.data)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate: ``nonce || ciphertext || tag``."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_many_into(
        self, plaintexts: Sequence[Buffer], aads: Sequence[bytes], outs: Sequence[memoryview]
    ) -> None:
        """:meth:`seal` of each plaintext, written into its ``out`` (of :func:`sealed_size`
        bytes) rather than into new bytes, with one draw of random bytes for all nonces.

        A backup seals its records straight into the block it writes to the pack: neither
        the compressed nor the sealed bytes are copied on the way.

        >>> k, out = Keys.generate(), bytearray(sealed_size(5))
        >>> k.seal_many_into([b"hello"], [b"m"], [memoryview(out)])
        >>> k.open(bytes(out), b"m")
        b'hello'
        """
        nonces = os.urandom(NONCE_SIZE * len(plaintexts))
        encrypt_into = self._aead.encrypt_into
        for n, (plaintext, aad, out) in enumerate(zip(plaintexts, aads, outs, strict=True)):
            nonce = nonces[n * NONCE_SIZE : (n + 1) * NONCE_SIZE]
            out[:NONCE_SIZE] = nonce
            encrypt_into(nonce, plaintext, aad, out[NONCE_SIZE:])

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`seal`; raises :class:`VaultDamagedError` on any change.

        >>> k = Keys.generate()
        >>> k.open(k.seal(b"hello", b"m"), b"m")
        b'hello'
        """
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except (InvalidTag, ValueError):
            raise VaultDamagedError("authentication tag does not match") from None


def sealed_size(size: int) -> int:
    """The size of ``size`` bytes once sealed: nonce, ciphertext and tag."""
    return NONCE_SIZE + size + TAG_SIZE


def key_file_kdf(secret: bytes) -> dict[str, Any]:
    """The KDF for a vault whose secret is the bytes of a key file (see the module
    docstring): HKDF for random bytes, argon2id for a short file or for text.

    >>> [key_file_kdf(k)["alg"] for k in (bytes(range(32)), b"short", b"a phrase " * 4)]
    ['hkdf-sha256', 'argon2id', 'argon2id']
    """
    random = len(secret) >= MIN_KEY_FILE and not _is_text(secret)
    return dict(KEY_FILE_KDF if random else DEFAULT_KDF)


def _is_text(data: bytes) -> bool:
    """UTF-8 of printable characters and line breaks, as a phrase, hex or base64 is; 32
    random bytes are that with a probability below 1e-13."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _kdf_alg(kdf: dict[str, Any]) -> str:
    return str(kdf.get("alg", "argon2id"))


def _kek(secret: bytes, salt: bytes, kdf: dict[str, Any]) -> bytes:
    alg = _kdf_alg(kdf)
    if alg == "hkdf-sha256":
        # Imported here: only a key-file vault needs it, and a command opens one vault.
        from cryptography.hazmat.primitives.hashes import SHA256
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(SHA256(), 32, salt, _HKDF_INFO).derive(secret)
    if alg != "argon2id":
        raise VaultError(f"vault key derivation {alg!r} is not one this version of vigile knows")
    from argon2.low_level import Type, hash_secret_raw  # not needed by key-file vaults

    return hash_secret_raw(
        secret,
        salt,
        time_cost=int(kdf["time_cost"]),
        memory_cost=int(kdf["memory_kib"]),
        parallelism=int(kdf["parallelism"]),
        hash_len=32,
        type=Type.ID,
    )


def _keys_aad(content_id: str, kdf_alg: str = "argon2id", pack_hash: str = "sha256") -> bytes:
    """Associated data of the sealed keys: the content-id algorithm, (since version 3) the
    KDF and (since version 4) the pack hash are authenticated too; earlier versions'
    associated data is kept as it was."""
    aad = b"vigile-vault-keys"
    if content_id != "hmac-sha256":
        aad += b" content_id=" + content_id.encode()
    if kdf_alg != "argon2id":
        aad += b" kdf=" + kdf_alg.encode()
    if pack_hash != "sha256":
        aad += b" packs=" + pack_hash.encode()
    return aad


def wrap_keys(keys: Keys, secret: bytes, kdf: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document stored as the vault's ``config``: KDF parameters and sealed keys.

    HKDF takes only a secret of at least :data:`MIN_KEY_FILE` bytes (see the module
    docstring): a shorter one raises :class:`VaultError`.
    """
    kdf = dict(kdf or DEFAULT_KDF)
    alg = _kdf_alg(kdf)
    if alg == "hkdf-sha256" and len(secret) < MIN_KEY_FILE:
        raise VaultError(
            f"a key file of {len(secret)} bytes is too short to be used without stretching "
            f"(at least {MIN_KEY_FILE} random bytes)"
        )
    salt = os.urandom(16)
    kek = Keys(_kek(secret, salt, kdf), b"")
    sealed = kek.seal(keys.data + keys.ident, _keys_aad(keys.content_id, alg, keys.pack_hash))
    document = {
        "version": 1,
        "kdf": kdf,
        "salt": base64.b64encode(salt).decode(),
        "keys": base64.b64encode(sealed).decode(),
    }
    if keys.content_id != "hmac-sha256":  # version 1 is what earlier releases can read
        document.update(version=2, content_id=keys.content_id)
    if alg != "argon2id":  # releases before version 3 cannot derive this KEK: refused there
        document.update(version=3)
    if keys.pack_hash != "sha256":  # releases before version 4 would check the wrong hash
        document.update(version=4, pack_hash=keys.pack_hash)
    if keys.frames:  # releases before version 5 cannot read frames
        document.update(version=FRAMES_VERSION)
    return document


def unwrap_keys(document: dict[str, Any], secret: bytes) -> Keys:
    """Open the sealed keys; a wrong secret raises :class:`WrongKeyError`.

    >>> doc = wrap_keys(Keys(b"d" * 32, b"i" * 32), b"pw", dict(DEFAULT_KDF, memory_kib=64))
    >>> unwrap_keys(doc, b"pw").data == b"d" * 32
    True
    >>> unwrap_keys(doc, b"nope")
    Traceback (most recent call last):
    vigile.vault.errors.WrongKeyError: wrong passphrase or key file for this vault
    """
    version = document.get("version")
    content_id = document.get("content_id", "hmac-sha256")
    pack_hash = document.get("pack_hash", "sha256")
    kdf = document["kdf"]
    if version not in FORMAT_VERSIONS or content_id not in CONTENT_IDS:
        raise VaultError(
            f"vault format version {version} (content ids {content_id}) is not one this "
            "version of vigile reads: upgrade vigile"
        )
    if pack_hash not in PACK_HASHES:
        raise VaultError(f"vault pack hash {pack_hash!r} is not one this version of vigile knows")
    kek = Keys(_kek(secret, base64.b64decode(document["salt"]), kdf), b"")
    try:
        sealed = base64.b64decode(document["keys"])
        raw = kek.open(sealed, _keys_aad(content_id, _kdf_alg(kdf), pack_hash))
    except VaultDamagedError:
        raise WrongKeyError("wrong passphrase or key file for this vault") from None
    return Keys(raw[:32], raw[32:], content_id, pack_hash, version >= FRAMES_VERSION)


def unlock(root: Path, secret: bytes) -> Keys:
    """The keys of the vault at ``root``, from its ``config`` and the secret.

    This is the slow part of opening a passphrase vault (the argon2id derivation, which
    runs without the GIL), so it lives here, apart from the pack and index code: a command can start
    it first and import the rest meanwhile.
    """
    try:
        document = json.loads((root / "config").read_bytes())
    except FileNotFoundError:
        raise VaultError(f"{root}: no vault here (run `vigile vault init`)") from None
    return unwrap_keys(document, secret)


def dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True).encode()
