"""The mail vault: incremental backup of mail accounts into an encrypted, deduplicated,
verifiable store, and restore to a point in time.

Modules, from the bottom up:

* ``crypto``   keys (argon2id from a passphrase), AES-256-GCM sealing, keyed content ids
* ``pack``     append-only pack files of sealed records
* ``index``    the local SQLite index of records
* ``snapshot`` snapshots, folder trees, message entries
* ``lock``     who may use the vault at the same time (writer and reader locks)
* ``repo``     the vault on disk (:class:`~vigile.vault.repo.Vault`)
* ``source``   the source interface and its contract; retry wrapper
* ``imap``     the IMAP source and restore target
* ``backup``, ``restore``, ``verify``, ``prune``: the operations
* ``settings`` the ``[vault]`` section of vigile.toml

Errors are drawn in :mod:`vigile.vault.errors`. See docs/vault.md.
"""
