"""``vigile vault prune``: retention, the one command that deletes."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from vigile.cli.common import CsvOption, JsonOption
from vigile.cli.output import choose_format, emit_rows
from vigile.cli.vault.common import (
    KeyFileOption,
    VaultConfigOption,
    VaultOption,
    open_vault,
    vault_app,
)
from vigile.vault.lock import Access
from vigile.vault.prune import forget, prune


@vault_app.command("prune")
def prune_cmd(
    keep_within: Annotated[
        float,
        typer.Option(
            "--keep-within",
            help="Keep snapshots newer than this many days "
            "(the newest of each account is always kept).",
        ),
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Change nothing; show what a real run would delete. Refused while a "
            "backup or prune writes the vault; reads by others may go on.",
        ),
    ] = False,
    config: VaultConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Delete snapshots older than --keep-within days, then the data only they used.

    Prune runs alone: it is refused (one line, exit status 1) while another vigile
    command has the vault open, and the others are refused until it has finished.
    """
    fmt = choose_format(as_json, as_csv)
    access = Access.STEADY if dry_run else Access.DELETE
    with open_vault(config, vault, key_file, access) as store:
        deleted = forget(store, timedelta(days=keep_within), dry_run=dry_run)
        stats = prune(store, set(deleted), dry_run=dry_run)
    stats.snapshots_deleted = len(deleted)
    emit_rows(
        [vars(stats)], list(vars(stats)), fmt, title="Prune (dry run)" if dry_run else "Prune"
    )
