"""``vigile vault snapshots``, ``ls`` and ``verify``: look inside the vault."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from vigile.cli.common import CsvOption, JsonOption
from vigile.cli.output import Fit, Format, choose_format, emit_rows, err_console
from vigile.cli.vault.common import (
    AccountOption,
    AtOption,
    FolderOption,
    KeyFileOption,
    VaultConfigOption,
    VaultOption,
    open_vault,
    parse_at,
    progress_bar,
    vault_app,
)
from vigile.vault.errors import VaultDamagedError, VaultError
from vigile.vault.listing import (
    FOLDER_COLUMNS,
    MESSAGE_COLUMNS,
    MESSAGE_FIELDS,
    SNAPSHOT_COLUMNS,
    MessageQuery,
    folder_rows,
    message_rows,
    snapshot_row,
)
from vigile.vault.lock import Access

#: A message table at 80 columns: the id stays whole on one line, to be copied into
#: `vault restore --message`; folder, sender and subject are cut to what is left.
MESSAGE_FIT = Fit(whole=("id",), cut=("folder", "from", "subject"))
#: The time is what ``--at`` takes: never folded. The snapshot's name (a command never
#: takes it; ``--json`` and ``--csv`` keep it whole) and the account give way first.
SNAPSHOT_FIT = Fit(whole=("time",), cut=("snapshot", "account"))


@vault_app.command("snapshots")
def snapshots_cmd(
    account: AccountOption = None,
    config: VaultConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List snapshots, oldest first: when, which account, how many folders and messages."""
    fmt = choose_format(as_json, as_csv)
    with open_vault(config, vault, key_file, Access.READ) as store:
        rows = [snapshot_row(s) for s in store.snapshots(account)]
    emit_rows(rows, SNAPSHOT_COLUMNS, fmt, title="Snapshots", fit=SNAPSHOT_FIT)


@vault_app.command("ls")
def ls_cmd(
    account: Annotated[str, typer.Option("--account", "-a", help="Account name.")],
    at: AtOption = None,
    folder: FolderOption = None,
    match: Annotated[
        str | None,
        typer.Option(
            "--match",
            "-m",
            help="Only messages whose sender or subject contains this text (any case); "
            "searches every folder unless --folder is given.",
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option("--from", help="Only messages whose sender (From) contains this text."),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="Only messages whose subject contains this text."),
    ] = None,
    config: VaultConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List folders of an account at a time; with --folder or a search, the messages.

    Messages are listed with their date, sender, subject, size, flags and id; the id is
    what `vigile vault restore --message` takes, and always printed whole. On a narrow
    terminal the folder, sender and subject are cut short (…); --json and --csv give
    them whole and add the Message-ID.
    """
    from fnmatch import fnmatchcase

    fmt = choose_format(as_json, as_csv)
    query = MessageQuery(match or "", sender or "", subject or "")
    with open_vault(config, vault, key_file, Access.READ) as store:
        snap = store.snapshot_at(account, parse_at(at))
        fit = None
        if folder is None and not query:
            rows, columns = folder_rows(snap), FOLDER_COLUMNS
        else:
            fit = MESSAGE_FIT
            rows = []
            columns = MESSAGE_COLUMNS if fmt is Format.TABLE else MESSAGE_FIELDS
            for ref in snap.folders:
                if fnmatchcase(ref.name, folder or "*"):
                    rows.extend(message_rows(store, ref, query=query))
    emit_rows(rows, columns, fmt, title=f"{account} at {snap.time:%Y-%m-%d %H:%M:%S}", fit=fit)


@vault_app.command("verify")
def verify_cmd(
    config: VaultConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Check every pack, record and snapshot; name each damaged message.

    Re-reads every pack and record, checks every hash and authentication tag and walks
    every snapshot. Exit status 1 if anything is damaged. The outcome is added to the
    vault's verifications/ folder (sealed, append-only), which `vigile serve` shows.
    """
    from vigile.vault.verify import verify  # not loaded by the other vault commands
    from vigile.vault.verifylog import record_verification

    fmt = choose_format(as_json, as_csv)
    started = datetime.now(UTC)
    with open_vault(config, vault, key_file, Access.READ) as store:
        with progress_bar() as bar:
            task = bar.add_task("verify", total=store.index.count(), messages=0)
            report = verify(store, lambda: bar.update(task, advance=1))
        try:  # for the console's Backups page; the result below stands either way
            record_verification(store, report, started)
        except VaultError as e:
            err_console.print(f"[yellow]warning:[/] {e}", highlight=False)
    if report.problems:
        emit_rows(
            report.problems, ["kind", "where", "error", "folder", "uid"], fmt, title="Damage found"
        )
        raise VaultDamagedError(
            f"{len(report.problems)} problem(s) in {report.packs} packs, "
            f"{report.records} records, {report.snapshots} snapshots"
        )
    emit_rows(
        [
            {
                "packs": report.packs,
                "records": report.records,
                "snapshots": report.snapshots,
                "problems": 0,
            }
        ],
        ["packs", "records", "snapshots", "problems"],
        fmt,
        title="Vault verified",
    )
