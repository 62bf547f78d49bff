"""``vigile vault``: back up mail accounts, list, verify, restore and prune the vault."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from vigile.cli.common import ConfigOption, CsvOption, JsonOption, read_config
from vigile.cli.output import choose_format, emit_rows, err_console
from vigile.errors import ConfigError
from vigile.vault.backup import backup_account
from vigile.vault.errors import SourceError, VaultDamagedError
from vigile.vault.imap import ImapSource, ImapTarget
from vigile.vault.prune import forget, prune
from vigile.vault.repo import Vault
from vigile.vault.restore import FORMATS, diff_imap, restore_files, restore_imap
from vigile.vault.settings import (
    ImapAccount,
    VaultSettings,
    parse_settings,
    run_secret_command,
)
from vigile.vault.source import RetryingSource
from vigile.vault.verify import verify

PASSPHRASE_ENV = "VIGILE_VAULT_PASSPHRASE"

vault_app = typer.Typer(
    name="vault",
    help=(
        "Back up mail accounts (IMAP) into an encrypted, deduplicated vault and restore "
        "them to a point in time. Accounts and the vault are set in the \\[vault] section "
        "of vigile.toml (see docs/vault.md)."
    ),
    no_args_is_help=True,
)

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
        help="Point in time (ISO 8601, e.g. 2026-11-20T08:00; no zone means UTC). Default: now.",
    ),
]
FolderOption = Annotated[
    str | None, typer.Option("--folder", "-f", help="Only folders matching this pattern.")
]


def _settings(config: Path | None) -> VaultSettings:
    cfg = read_config(config)
    return parse_settings(cfg.section("vault"), cfg.path)


def _root(settings: VaultSettings, vault: Path | None) -> Path:
    root = vault or settings.path
    if root is None:
        raise ConfigError("no vault given: use --vault or set [vault] path in the config")
    return root


def _secret(settings: VaultSettings, key_file: Path | None, confirm: bool = False) -> bytes:
    key_file = key_file or (None if os.environ.get(PASSPHRASE_ENV) else settings.key_file)
    if key_file is not None:
        try:
            return key_file.read_bytes()
        except OSError as e:
            raise ConfigError(f"{key_file}: cannot read key file: {e.strerror}") from None
    if value := os.environ.get(PASSPHRASE_ENV):
        return value.encode()
    if settings.passphrase_command:
        return run_secret_command(settings.passphrase_command, "passphrase_command").encode()
    if not sys.stdin.isatty():
        raise ConfigError(f"no vault secret: use --key-file, ${PASSPHRASE_ENV} or a terminal")
    return str(
        typer.prompt("Vault passphrase", hide_input=True, confirmation_prompt=confirm)
    ).encode()


def _open(config: Path | None, vault: Path | None, key_file: Path | None, write: bool) -> Vault:
    settings = _settings(config)
    root = _root(settings, vault)
    return Vault.open(
        root, _secret(settings, key_file), writable=write, pack_size=settings.pack_size
    )


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--at {value!r}: not an ISO 8601 time (2026-11-20T08:00)") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _progress() -> Progress:
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


@vault_app.command("init")
def init_cmd(
    config: ConfigOption = None, vault: VaultOption = None, key_file: KeyFileOption = None
) -> None:
    """Create an empty vault: new random keys, sealed under your passphrase or key file."""
    settings = _settings(config)
    root = _root(settings, vault)
    Vault.create(root, _secret(settings, key_file, confirm=True))
    err_console.print(f"created vault {root}", highlight=False)


@vault_app.command("backup")
def backup_cmd(
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="Account(s) to back up. Default: all."),
    ] = None,
    config: ConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Back up accounts: fetch what changed since the last run and record a snapshot."""
    fmt = choose_format(as_json, as_csv)
    settings = _settings(config)
    accounts = [settings.account(a) for a in account] if account else list(settings.accounts)
    if not accounts:
        raise ConfigError("no [[vault.accounts]] configured")
    store = _open(config, vault, key_file, write=True)
    rows, failed = [], []
    try:
        for acc in accounts:
            try:
                rows.append(_backup_one(store, acc))
            except SourceError as e:  # the next account may well be reachable
                err_console.print(f"[bold red]{acc.name}:[/] {e}", highlight=False)
                failed.append(acc.name)
                rows.append({"account": acc.name, "error": str(e)})
    finally:
        store.close()
    columns = [
        "account",
        "snapshot",
        "folders",
        "folders_unchanged",
        "messages",
        "fetched",
        "stored",
        "bytes_fetched",
        "flag_changes",
        "expunged",
        "retries",
        "error",
    ]
    emit_rows(rows, columns, fmt, title="Backup")
    if failed:
        raise SourceError(f"backup failed for {len(failed)} account(s): {', '.join(failed)}")


def _backup_one(store: Vault, acc: ImapAccount) -> dict[str, Any]:
    """One account's run, with a progress bar of messages, bytes and rate."""
    with _progress() as bar:
        task = bar.add_task(acc.name, total=None, messages=0)

        def tick(folder: str, size: int) -> None:
            done = bar.tasks[0].fields["messages"] + 1
            bar.update(task, advance=size, messages=done, description=f"{acc.name} {folder}")

        source = RetryingSource(lambda: ImapSource(acc))
        try:
            snap, stats = backup_account(store, source, tick)
        finally:
            source.close()
    return {"account": acc.name, "snapshot": snap.name, **vars(stats), "retries": source.retries}


@vault_app.command("snapshots")
def snapshots_cmd(
    account: AccountOption = None,
    config: ConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List snapshots, oldest first: when, which account, how many folders and messages."""
    fmt = choose_format(as_json, as_csv)
    store = _open(config, vault, key_file, write=False)
    try:
        rows = [
            {
                "snapshot": s.name,
                "account": s.account,
                "time": s.time,
                "folders": len(s.folders),
                "messages": sum(f.count for f in s.folders),
                "fetched": s.stats.get("fetched"),
                "stored": s.stats.get("stored"),
            }
            for s in store.snapshots(account)
        ]
    finally:
        store.close()
    emit_rows(
        rows,
        ["snapshot", "account", "time", "folders", "messages", "fetched", "stored"],
        fmt,
        title="Snapshots",
    )


@vault_app.command("ls")
def ls_cmd(
    account: Annotated[str, typer.Option("--account", "-a", help="Account name.")],
    at: AtOption = None,
    folder: FolderOption = None,
    config: ConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List folders of an account at a time; with --folder, the messages in them."""
    from fnmatch import fnmatchcase

    fmt = choose_format(as_json, as_csv)
    store = _open(config, vault, key_file, write=False)
    try:
        snap = store.snapshot_at(account, _parse_at(at))
        if folder is None:
            rows = [
                {
                    "folder": f.name,
                    "messages": f.count,
                    "uidvalidity": f.uidvalidity,
                    "snapshot": snap.name,
                }
                for f in snap.folders
            ]
            columns = ["folder", "messages", "uidvalidity", "snapshot"]
        else:
            rows = []
            for ref in snap.folders:
                if fnmatchcase(ref.name, folder):
                    for m in sorted(
                        store.get_tree(ref.tree).messages.values(), key=lambda m: m.uid
                    ):
                        rows.append(
                            {
                                "folder": ref.name,
                                "uid": m.uid,
                                "date": m.internaldate,
                                "size": m.size,
                                "flags": " ".join(m.flags),
                                "id": m.blob_id.hex()[:16],
                            }
                        )
            columns = ["folder", "uid", "date", "size", "flags", "id"]
    finally:
        store.close()
    emit_rows(rows, columns, fmt, title=f"{account} at {snap.time:%Y-%m-%d %H:%M:%S}")


@vault_app.command("restore")
def restore_cmd(
    account: Annotated[str, typer.Option("--account", "-a", help="Account whose mail to restore.")],
    to: Annotated[str, typer.Option("--to", help=f"Where to: {', '.join(FORMATS)}.")] = "imap",
    at: AtOption = None,
    folder: FolderOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder for maildir, mbox and eml.")
    ] = None,
    into: Annotated[
        str | None,
        typer.Option(
            "--into", help="With --to imap: restore into this account. Default: the same."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="With --to imap: write nothing; list what was added, deleted and re-flagged "
            "in the mailbox since that time.",
        ),
    ] = False,
    config: ConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Bring an account back as it was at --at, into a mailbox or to files.

    Into a live mailbox (--to imap) only what is missing is added, with its flags and
    date; --dry-run shows the difference instead. Maildir, mbox and .eml go under --out.
    """
    fmt = choose_format(as_json, as_csv)
    if to not in FORMATS:
        raise ConfigError(f"--to {to!r}: choose one of {', '.join(FORMATS)}")
    if to != "imap" and out is None:
        raise ConfigError(f"--to {to} needs --out DIR")
    if dry_run and to != "imap":
        raise ConfigError("--dry-run compares with a live mailbox: use it with --to imap")
    settings = _settings(config)
    store = _open(config, vault, key_file, write=False)
    try:
        snap = store.snapshot_at(account, _parse_at(at))
        err_console.print(
            f"snapshot {snap.name} taken {snap.time:%Y-%m-%d %H:%M:%S %Z}", highlight=False
        )
        if to == "imap":
            target = ImapTarget(settings.account(into or account))
            try:
                if dry_run:
                    rows = diff_imap(store, snap, target, folder)
                    emit_rows(
                        rows,
                        ["folder", "change", "subject", "vault_flags", "live_flags"],
                        fmt,
                        title="Mailbox now versus vault",
                    )
                    return
                with _progress() as bar:
                    task = bar.add_task("restore", total=None, messages=0)
                    report = restore_imap(
                        store, snap, target, folder, lambda n: bar.update(task, advance=n)
                    )
            finally:
                target.close()
        else:
            assert out is not None
            report = restore_files(store, snap, to, out, folder)
    finally:
        store.close()
    emit_rows(
        [
            {
                "snapshot": snap.name,
                "restored": report.restored,
                "present": report.present,
                "damaged": len(report.damaged),
            }
        ],
        ["snapshot", "restored", "present", "damaged"],
        fmt,
        title="Restore",
    )
    if report.damaged:
        for d in report.damaged:
            err_console.print(
                f"damaged: {d['folder']} uid {d['uid']}: {d['error']}", highlight=False
            )
        raise VaultDamagedError(f"{len(report.damaged)} message(s) could not be restored")


@vault_app.command("verify")
def verify_cmd(
    config: ConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Check every pack, record and snapshot; name each damaged message.

    Re-reads every pack and record, checks every hash and authentication tag and walks
    every snapshot. Exit status 1 if anything is damaged.
    """
    fmt = choose_format(as_json, as_csv)
    store = _open(config, vault, key_file, write=False)
    try:
        with _progress() as bar:
            task = bar.add_task("verify", total=store.index.count(), messages=0)
            report = verify(store, lambda: bar.update(task, advance=1))
    finally:
        store.close()
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
    config: ConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Delete snapshots older than --keep-within days, then the data only they used."""
    fmt = choose_format(as_json, as_csv)
    store = _open(config, vault, key_file, write=True)
    try:
        deleted = forget(store, timedelta(days=keep_within))
        stats = prune(store)
    finally:
        store.close()
    stats.snapshots_deleted = len(deleted)
    emit_rows([vars(stats)], list(vars(stats)), fmt, title="Prune")


def register(app: typer.Typer) -> None:
    app.add_typer(vault_app)
