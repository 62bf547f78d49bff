"""The mail vault as the Backups page shows it: read-only, the vault open only per call.

Every function here opens the vault for ``Access.READ`` (it reads beside a running
backup; a running prune refuses it, :mod:`vigile.vault.lock`), reads what it needs and
closes it before returning, so no lock outlives a request. The secret comes from where
the CLI finds it (:func:`vigile.vault.settings.stored_secret`: ``[vault] key_file``,
``$VIGILE_VAULT_PASSPHRASE``, ``[vault] passphrase_command``), never from a prompt, and is
dropped with the vault. What can go wrong is a :class:`VaultUnavailableError` with a
state and a one-line reason that names no secret: no vault configured, no secret, no
vault at the path, a wrong secret, a prune running, damage.
"""

from __future__ import annotations

import glob
import hashlib
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigile.config import Config
from vigile.vault.crypto import Keys
from vigile.vault.errors import (
    VaultBusyError,
    VaultConfigError,
    VaultDamagedError,
    VaultError,
    WrongKeyError,
)
from vigile.vault.listing import (
    MESSAGE_ID_CHARS,
    MessageQuery,
    find_messages,
    folder_rows,
    message_row,
    snapshot_row,
)
from vigile.vault.lock import Access
from vigile.vault.repo import Vault
from vigile.vault.settings import VaultSettings, parse_settings, stored_secret
from vigile.vault.snapshot import Snapshot
from vigile.vault.verifylog import last_verification

#: Seconds the console lets ``[vault] passphrase_command`` run (the CLI allows 60).
SECRET_COMMAND_TIMEOUT = 15
#: Seconds after which a refused page or API call may ask again (a prune is running).
BUSY_RETRY_AFTER = 30


class VaultUnavailableError(Exception):
    """The vault cannot be read now; ``state`` says why, the message says it in one line."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.retry_after = BUSY_RETRY_AFTER if state == "busy" else None


def vault_settings(config: Config) -> VaultSettings:
    """The ``[vault]`` section of the console's configuration."""
    try:
        return parse_settings(config.section("vault"), config.path)
    except VaultConfigError as e:
        raise VaultUnavailableError("config_error", str(e)) from None


@contextmanager
def opened_vault(settings: VaultSettings) -> Iterator[Vault]:
    """The vault opened for reading, closed on leaving the block."""
    if settings.path is None:
        raise VaultUnavailableError("not_configured", "no [vault] path in the configuration")
    try:
        secret = stored_secret(settings, interactive=False, timeout=SECRET_COMMAND_TIMEOUT)
    except VaultConfigError as e:
        raise VaultUnavailableError("no_secret", str(e)) from None
    if secret is None:
        raise VaultUnavailableError(
            "no_secret",
            "no vault secret for the console: set [vault] key_file or passphrase_command, "
            "or $VIGILE_VAULT_PASSPHRASE where `vigile serve` runs",
        )
    try:
        vault = Vault(settings.path, _keys(settings.path, secret), access=Access.READ)
    except WrongKeyError:
        raise VaultUnavailableError("wrong_key", "the vault secret does not open it") from None
    except VaultBusyError as e:
        raise VaultUnavailableError("busy", str(e)) from None
    except VaultError as e:
        missing = not (settings.path / "config").exists()
        raise VaultUnavailableError("missing" if missing else "error", str(e)) from None
    except (OSError, sqlite3.Error) as e:  # permissions, a disk error: said, not a 500
        raise VaultUnavailableError("error", f"{settings.path}: {_reason(e)}") from None
    del secret
    try:
        yield vault
    except VaultDamagedError as e:
        raise VaultUnavailableError("damaged", f"{e}; run `vigile vault verify`") from None
    except (OSError, sqlite3.Error) as e:
        raise VaultUnavailableError("error", f"{settings.path}: {_reason(e)}") from None
    finally:
        vault.close()


def _reason(e: OSError | sqlite3.Error) -> str:
    return (e.strerror or str(e)) if isinstance(e, OSError) else str(e)


#: The keys of the vault last opened: (its folder, the state of its ``config`` file and a
#: digest of the secret that unlocked it) -> keys. Unlocking a passphrase vault is an
#: argon2id derivation of 0.2-0.4 s and 64 MiB; with this, a page pays for it once, not on
#: every request. The process can read the secret's source anyway, so holding the keys
#: it derives changes no exposure; a changed secret or a re-created vault misses the cache.
_UNLOCKED: dict[tuple[Path, tuple[int, int], bytes], Keys] = {}


def _keys(root: Path, secret: bytes) -> Keys:
    try:
        stat = (root / "config").stat()
    except OSError:
        return Vault.unlock(root, secret)  # says there is no vault here
    key = (root, (stat.st_mtime_ns, stat.st_size), hashlib.sha256(secret).digest())
    if key not in _UNLOCKED:
        keys = Vault.unlock(root, secret)
        _UNLOCKED.clear()  # one vault per console
        _UNLOCKED[key] = keys
    return _UNLOCKED[key]


def restore_commands(
    snap: Snapshot, config: Config, folder: str | None = None, message: str | None = None
) -> dict[str, str]:
    """The CLI commands that restore ``snap``, for copying (restore is a CLI action); with
    ``message`` (a record id as listings show it, in ``folder``), that message alone.

    ``--at`` is the snapshot's exact time, so it picks this snapshot and no older one;
    ``--folder`` is the folder's name with its pattern characters escaped.

    >>> from datetime import datetime, UTC
    >>> snap = Snapshot("x", "alice", datetime(2026, 11, 20, 8, 0, 5, 1234, UTC), ())
    >>> restore_commands(snap, Config())["dry_run"]
    'vigile vault restore -a alice --at 2026-11-20T08:00:05.001234Z --to imap --dry-run'
    >>> restore_commands(snap, Config(), "Q[1]*", "0123456789abcdef")["imap"][63:]
    "--folder 'Q[[]1][*]' --message 0123456789abcdef --to imap"
    """
    at = snap.time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    base = ["vigile", "vault", "restore", "-a", snap.account, "--at", at]
    if config.path is not None:
        base += ["--config", str(config.path.resolve())]
    out = f"./restore-{snap.account}-{snap.time.astimezone(UTC):%Y%m%dT%H%M%S}"
    if message is not None:
        base += ["--folder", glob.escape(folder or "*"), "--message", message]
        return {
            "dry_run": shlex.join([*base, "--to", "imap", "--dry-run"]),
            "imap": shlex.join([*base, "--to", "imap"]),
            "eml": shlex.join([*base, "--to", "eml", "--out", out]),
        }
    return {
        "dry_run": shlex.join([*base, "--to", "imap", "--dry-run"]),
        "imap": shlex.join([*base, "--to", "imap"]),
        "maildir": shlex.join([*base, "--to", "maildir", "--out", out]),
    }


def _account_row(
    name: str,
    configured: bool,
    count: int,
    last: Snapshot | None,
    stale_after: float,
    now: datetime,
) -> dict[str, Any]:
    age = (now - last.time).total_seconds() / 3600 if last else None
    state = "never" if age is None else "stale" if age > stale_after else "ok"
    return {
        "account": name,
        "configured": configured,
        "state": state,
        "snapshots": count,
        "last": snapshot_row(last) if last else None,
        "age_hours": age,
    }


def vault_status(config: Config, now: datetime | None = None) -> dict[str, Any]:
    """Every account's last backup and its state, and the last verify: never raises.

    ``state`` per account: ``ok``, ``stale`` (newest snapshot older than ``[vault]
    stale_after_hours``) or ``never``; ``unknown`` for all when the vault cannot be read.
    """
    now = now or datetime.now(UTC)
    out: dict[str, Any] = {"configured": bool(config.section("vault")), "state": "ok"}
    out.update(detail=None, path=None, stale_after_hours=None, accounts=[], verification=None)
    out["verification_error"] = None
    try:
        settings = vault_settings(config)
        out.update(path=str(settings.path or ""), stale_after_hours=settings.stale_after_hours)
        names = [a.name for a in settings.accounts]
        out["accounts"] = [{"account": n, "configured": True, "state": "unknown"} for n in names]
        with opened_vault(settings) as vault:
            newest = vault.newest_snapshots()
            try:
                out["verification"] = last_verification(vault)
            except VaultDamagedError as e:  # the accounts are still worth showing
                out["verification_error"] = str(e)
    except VaultUnavailableError as e:
        out.update(state=e.state, detail=str(e))
        return out
    by_account: dict[str, tuple[int, Snapshot | None]] = {n: (0, None) for n in names}
    by_account.update(sorted(newest.items()))  # the configured first, in their order
    out["accounts"] = [
        _account_row(n, n in names, count, last, settings.stale_after_hours, now)
        for n, (count, last) in by_account.items()
    ]
    return out


def summary(status: dict[str, Any]) -> dict[str, Any]:
    """Counts for the overview's one-line backup status."""
    states = [a["state"] for a in status["accounts"]]
    verification = status["verification"]
    return {
        "state": status["state"],
        "detail": status["detail"],
        "accounts": len(states),
        "ok": states.count("ok"),
        "stale": states.count("stale"),
        "never": states.count("never"),
        "verified_ok": verification["ok"] if verification else None,
    }


def account_snapshots(config: Config, account: str) -> list[dict[str, Any]] | None:
    """The snapshots of ``account``, newest first, or None for an account the vault and
    the configuration do not know."""
    settings = vault_settings(config)
    with opened_vault(settings) as vault:
        snaps = vault.snapshots(account)
    known = any(a.name == account for a in settings.accounts)
    if not snaps and not known:
        return None
    return [snapshot_row(s) for s in reversed(snaps)]


def _snapshot(vault: Vault, account: str, name: str) -> Snapshot | None:
    snap = vault.load_snapshot(name)
    return snap if snap is not None and snap.account == account else None


def _detail(snap: Snapshot, config: Config) -> dict[str, Any]:
    return {
        **snapshot_row(snap),
        "stats": snap.stats,
        "folder_list": folder_rows(snap),
        "restore": restore_commands(snap, config),
    }


def _messages(
    vault: Vault,
    snap: Snapshot,
    folder: str | None,
    offset: int,
    limit: int,
    query: MessageQuery | None = None,
) -> dict[str, Any] | None:
    """A page of the messages of ``folder`` (of every folder if None) that ``query``
    matches; None for no such folder."""
    refs = snap.folders if folder is None else [snap.folder(folder)]
    if None in refs:
        return None
    found = [(ref.name, m) for ref in refs if ref for m in find_messages(vault, ref, query)]
    page = found[offset : offset + limit]  # only this page's rows are built
    return {
        "folder": folder,
        "query": asdict(query or MessageQuery()),
        "total": len(found),
        "offset": offset,
        "messages": [
            {**r, "date": r["date"].astimezone(UTC)} for r in (message_row(*f) for f in page)
        ],
    }


def snapshot_detail(config: Config, account: str, name: str) -> dict[str, Any] | None:
    """One snapshot: its counts, its folders, and the commands that restore it."""
    with opened_vault(vault_settings(config)) as vault:
        snap = _snapshot(vault, account, name)
    return _detail(snap, config) if snap is not None else None


def folder_messages(
    config: Config,
    account: str,
    name: str,
    folder: str | None,
    offset: int = 0,
    limit: int = 500,
    query: MessageQuery | None = None,
) -> dict[str, Any] | None:
    """The messages of one folder of one snapshot (of every folder with ``folder`` None),
    by UID, those ``query`` matches, ``limit`` from ``offset``."""
    with opened_vault(vault_settings(config)) as vault:
        snap = _snapshot(vault, account, name)
        if snap is None:
            return None
        return _messages(vault, snap, folder, offset, limit, query)


def message_restore(
    config: Config, account: str, name: str, folder: str, message: str
) -> dict[str, Any] | None:
    """One message of a snapshot (its row) and the commands that restore it alone, or
    None if ``folder`` of that snapshot has no message of that id."""
    with opened_vault(vault_settings(config)) as vault:
        snap = _snapshot(vault, account, name)
        ref = snap.folder(folder) if snap is not None else None
        if snap is None or ref is None:
            return None
        found = [m for m in find_messages(vault, ref) if m.blob_id.hex().startswith(message)]
    if len(message) < MESSAGE_ID_CHARS or not found:
        return None
    row = message_row(folder, found[0])
    return {**row, "restore": restore_commands(snap, config, folder, row["id"])}


def snapshot_page(
    config: Config,
    account: str,
    name: str,
    folder: str | None,
    offset: int,
    limit: int,
    query: MessageQuery | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """:func:`snapshot_detail` and, with ``folder`` or ``query``, :func:`folder_messages`,
    with the vault opened once: ``(None, None)`` for no such snapshot, ``(detail, None)``
    for no such folder."""
    with opened_vault(vault_settings(config)) as vault:
        snap = _snapshot(vault, account, name)
        if snap is None:
            return None, None
        wanted = folder is not None or bool(query)
        found = _messages(vault, snap, folder, offset, limit, query) if wanted else None
    return _detail(snap, config), found
