"""Shared pieces of ``vigile vault``: the sub-app, options, opening the vault."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigile.cli.common import read_config
from vigile.cli.output import err_console
from vigile.errors import ConfigError
from vigile.vault.lock import Access
from vigile.vault.settings import (
    PASSPHRASE_ENV,
    VaultSettings,
    parse_settings,
    secret_key_file,
    stored_secret,
)

# The vault, IMAP and progress-bar modules are imported where they are used: `vault
# backup` starts the key derivation first and imports them while it runs.
if TYPE_CHECKING:
    from rich.progress import Progress

    from vigile.vault.repo import Vault

vault_app = typer.Typer(
    name="vault",
    help=(
        "Back up mail accounts (IMAP) into an encrypted, deduplicated vault and restore "
        "them to a point in time. Accounts and the vault are set in the \\[vault] section "
        "of vigile.toml (see docs/vault.md)."
    ),
    no_args_is_help=True,
)

VaultConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="VIGILE_CONFIG",
        help=(
            "Configuration (TOML) whose \\[vault] section names the vault and its accounts. "
            "Default: ./vigile.toml if present."
        ),
    ),
]
VaultOption = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        envvar="VIGILE_VAULT",
        help="Vault folder. Default: \\[vault] path in the config.",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help=(
            f"File whose bytes are the vault secret. Otherwise ${PASSPHRASE_ENV}, then "
            "\\[vault] key_file or passphrase_command, then a prompt."
        ),
    ),
]
AccountOption = Annotated[
    str | None, typer.Option("--account", "-a", help="Account name from \\[\\[vault.accounts]].")
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Point in time (ISO 8601, e.g. 2026-11-20T08:00; no zone means UTC; a time to "
        "the second, as `vault snapshots` prints it, covers that whole second). Default: now.",
    ),
]
FolderOption = Annotated[
    str | None, typer.Option("--folder", "-f", help="Only folders matching this pattern.")
]


def load_settings(config: Path | None) -> VaultSettings:
    cfg = read_config(config)
    return parse_settings(cfg.section("vault"), cfg.path)


def vault_root(settings: VaultSettings, vault: Path | None) -> Path:
    root = vault or settings.path
    if root is None:
        raise ConfigError("no vault given: use --vault or set [vault] path in the config")
    return root


def vault_key_file(settings: VaultSettings, key_file: Path | None) -> Path | None:
    """The key file the vault secret is read from, or ``None`` if it is a passphrase."""
    return secret_key_file(settings, key_file)


def vault_secret(settings: VaultSettings, key_file: Path | None, confirm: bool = False) -> bytes:
    """The secret from where it is kept (``stored_secret``), else a prompt on a terminal."""
    secret = stored_secret(settings, key_file)
    if secret is not None:
        return secret
    if not sys.stdin.isatty():
        raise ConfigError(f"no vault secret: use --key-file, ${PASSPHRASE_ENV} or a terminal")
    return str(
        typer.prompt("Vault passphrase", hide_input=True, confirmation_prompt=confirm)
    ).encode()


def open_vault(
    config: Path | None, vault: Path | None, key_file: Path | None, access: Access
) -> Vault:
    """Open the vault for ``access``: the locks it needs are held until it is closed."""
    from vigile.vault.repo import Vault

    settings = load_settings(config)
    root = vault_root(settings, vault)
    return Vault.open(
        root, vault_secret(settings, key_file), access=access, pack_size=settings.pack_size
    )


def parse_at(value: str | None) -> datetime | None:
    """The time ``--at`` names, UTC when it has no zone.

    A time written to the second (``2026-11-23 08:45:36``, as `vault snapshots` prints
    a snapshot's time) names that whole second: snapshots are taken at fractions of a
    second, and the one listed at 08:45:36 must be found at or before it.

    >>> parse_at("2026-11-23 08:45:36").isoformat()
    '2026-11-23T08:45:36.999999+00:00'
    >>> parse_at("2026-11-23T08:45:36.5+01:00").isoformat()
    '2026-11-23T08:45:36.500000+01:00'
    >>> parse_at("2026-11-20T08:00").isoformat()
    '2026-11-20T08:00:00+00:00'
    """
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--at {value!r}: not an ISO 8601 time (2026-11-20T08:00)") from None
    if re.search(r"\d\d:\d\d:\d\d(?![.,\d])", value):  # to the second: all of it
        at = at.replace(microsecond=999_999)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def progress_bar() -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[messages]} msgs"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
