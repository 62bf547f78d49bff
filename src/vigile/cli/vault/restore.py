"""``vigile vault restore``: to a live mailbox, Maildir, mbox or .eml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigile.cli.common import CsvOption, JsonOption
from vigile.cli.output import Format, choose_format, emit_rows, err_console
from vigile.cli.vault.common import (
    AtOption,
    FolderOption,
    KeyFileOption,
    VaultConfigOption,
    VaultOption,
    load_settings,
    open_vault,
    parse_at,
    progress_bar,
    vault_app,
)
from vigile.errors import ConfigError
from vigile.vault.errors import VaultDamagedError
from vigile.vault.lock import Access
from vigile.vault.restore import (
    FORMATS,
    diff_imap,
    restore_files,
    restore_imap,
    select_messages,
)

#: The shortest record id prefix --message takes: 32 bits, enough within one snapshot.
MIN_MESSAGE_ID = 8


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
    message: Annotated[
        list[str] | None,
        typer.Option(
            "--message",
            "-m",
            help="Restore only this message: its id as `vigile vault ls` shows it (or the "
            "start of one, 8 hex digits or more). Repeat for several. Works with every "
            "--to and with --dry-run.",
        ),
    ] = None,
    reset_flags: Annotated[
        bool,
        typer.Option(
            "--reset-flags",
            help="With --to imap: also set the flags of messages already in the mailbox back "
            "to what they were at --at (by default they are left as they are).",
        ),
    ] = False,
    config: VaultConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Bring an account back as it was at --at, into a mailbox or to files.

    Into a live mailbox (--to imap) only what is missing is added, with its flags and
    date; --dry-run shows the difference instead. Maildir, mbox and .eml go under --out.
    With --message, only the messages named (find them with `vigile vault ls --match`).
    """
    fmt = choose_format(as_json, as_csv)
    if to not in FORMATS:
        raise ConfigError(f"--to {to!r}: choose one of {', '.join(FORMATS)}")
    if to != "imap" and out is None:
        raise ConfigError(f"--to {to} needs --out DIR")
    if reset_flags and to != "imap":
        raise ConfigError("--reset-flags sets flags in a live mailbox: use it with --to imap")
    if dry_run and to != "imap":
        raise ConfigError("--dry-run compares with a live mailbox: use it with --to imap")
    messages = _message_ids(message)
    settings = load_settings(config)
    with open_vault(config, vault, key_file, Access.READ) as store:
        snap = store.snapshot_at(account, parse_at(at))
        # Each folder tree is read once: the selection refuses unknown ids before
        # anything is written, and the restore then takes its trees.
        chosen = select_messages(store, snap, folder, messages) if messages else None
        if chosen is not None and chosen.unknown:
            where = f" in folders matching {folder!r}" if folder else ""
            raise ConfigError(
                f"--message {chosen.unknown[0]}: no such message in snapshot {snap.name}"
                f"{where} (see `vigile vault ls -a {account} --at ...`)"
            )
        err_console.print(
            f"snapshot {snap.name} taken {snap.time:%Y-%m-%d %H:%M:%S %Z}", highlight=False
        )
        if to == "imap":
            from vigile.vault.imap import ImapTarget

            target = ImapTarget(settings.account(into or account))
            try:
                if dry_run:
                    rows = diff_imap(store, snap, target, folder, chosen)
                    if not rows and fmt is Format.TABLE:  # an empty table reads as a fault
                        what = (
                            "every message of the snapshot with its flags, and no other"
                            if chosen is None
                            else "the chosen message(s) with their flags"
                        )
                        err_console.print(
                            f"no difference: the mailbox holds {what}", highlight=False
                        )
                        return
                    emit_rows(
                        rows,
                        ["folder", "change", "subject", "vault_flags", "live_flags"],
                        fmt,
                        title="Mailbox now versus vault",
                    )
                    return
                with progress_bar() as bar:
                    task = bar.add_task("restore", total=None, messages=0)
                    report = restore_imap(
                        store,
                        snap,
                        target,
                        folder,
                        lambda n: bar.update(task, advance=n),
                        reset_flags=reset_flags,
                        messages=chosen,
                    )
            finally:
                target.close()
        else:
            assert out is not None
            report = restore_files(store, snap, to, out, folder, messages=chosen)
    emit_rows(
        [
            {
                "snapshot": snap.name,
                "restored": report.restored,
                "present": report.present,
                "reflagged": report.reflagged,
                "damaged": len(report.damaged),
            }
        ],
        ["snapshot", "restored", "present", "reflagged", "damaged"],
        fmt,
        title="Restore",
    )
    if report.damaged:
        for d in report.damaged:
            err_console.print(
                f"damaged: {d['folder']} uid {d['uid']}: {d['error']}", highlight=False
            )
        raise VaultDamagedError(f"{len(report.damaged)} message(s) could not be restored")


def _message_ids(given: list[str] | None) -> list[str] | None:
    """The --message values, checked: hex record ids (or prefixes of at least 8 digits)."""
    if not given:
        return None
    for value in given:
        if len(value) < MIN_MESSAGE_ID or not all(c in "0123456789abcdefABCDEF" for c in value):
            raise ConfigError(
                f"--message {value!r}: give a message id as `vigile vault ls` shows it "
                f"(hex digits, at least {MIN_MESSAGE_ID})"
            )
    return [v.lower() for v in given]
