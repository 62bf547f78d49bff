"""Errors of the mail vault.

The hierarchy, below :class:`vigile.errors.VigileError`::

    VigileError
    ├── UserError
    │   ├── WrongKeyError        the passphrase or key file does not open the vault
    │   └── VaultConfigError     an account or vault setting is wrong or missing
    └── VaultError               the vault cannot be read or written
        ├── VaultDamagedError    a pack, snapshot or index record fails its check
        ├── VaultBusyError       another process holds a lock this command needs (transient)
        └── SourceError          the mail server failed (permanent, or after retries)
            ├── SourceAuthError        the server rejected the credentials (permanent)
            └── SourceConnectionError  the connection failed or dropped (transient)
"""

from __future__ import annotations

from vigile.errors import UserError, VigileError


class WrongKeyError(UserError):
    """The passphrase or key file does not open this vault."""


class VaultConfigError(UserError):
    """An account or vault setting is wrong or missing."""


class VaultError(VigileError):
    """The vault cannot be read or written (disk full, permissions, missing files)."""


class VaultDamagedError(VaultError):
    """Stored data failed its authentication tag or hash check."""


class VaultBusyError(VaultError):
    """Another vigile process uses the vault in a way this command must not overlap
    (see :mod:`vigile.vault.lock`); nothing was read or changed: try again later."""


class SourceError(VaultError):
    """The mail source failed; transient failures are retried before this is raised."""


class SourceAuthError(SourceError):
    """The server rejected the credentials: permanent, never retried."""


class SourceConnectionError(SourceError):
    """The connection failed or dropped: transient, retried by :class:`RetryingSource`."""
