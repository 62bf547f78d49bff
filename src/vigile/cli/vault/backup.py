"""``vigile vault init`` and ``vigile vault backup``."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.padding import Padding
from rich.text import Text

from vigile.cli import allow_quick_exit
from vigile.cli.common import CsvOption, JsonOption
from vigile.cli.output import Format, choose_format, console, emit_rows, err_console
from vigile.cli.vault.common import (
    KeyFileOption,
    VaultConfigOption,
    VaultOption,
    load_settings,
    progress_bar,
    vault_app,
    vault_key_file,
    vault_root,
    vault_secret,
)
from vigile.errors import ConfigError
from vigile.vault.crypto import unlock
from vigile.vault.errors import SourceError
from vigile.vault.settings import ImapAccount

if TYPE_CHECKING:
    from vigile.vault.repo import Vault
    from vigile.vault.source import RetryingSource


@vault_app.command("init")
def init_cmd(
    config: VaultConfigOption = None, vault: VaultOption = None, key_file: KeyFileOption = None
) -> None:
    """Create an empty vault: new random keys, sealed under your passphrase or key file.

    A key file of 32 or more random bytes (`head -c 32 /dev/urandom > vault.key`) is
    taken as a key (HKDF-SHA256); a passphrase, or a key file that is shorter or is text,
    is stretched with argon2id (docs/vault.md).
    """
    from vigile.vault.crypto import key_file_kdf
    from vigile.vault.repo import Vault

    settings = load_settings(config)
    root = vault_root(settings, vault)
    secret = vault_secret(settings, key_file, confirm=True)
    from_file = vault_key_file(settings, key_file) is not None
    Vault.create(root, secret, key_file_kdf(secret) if from_file else None)
    err_console.print(f"created vault {root}", highlight=False)


@vault_app.command("backup")
def backup_cmd(
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="Account(s) to back up. Default: all."),
    ] = None,
    config: VaultConfigOption = None,
    vault: VaultOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Back up accounts: fetch what changed since the last run and record a snapshot."""
    fmt = choose_format(as_json, as_csv)
    with _collecting_less():
        _backup_accounts(account, config, vault, key_file, fmt)


def _backup_accounts(
    account: list[str] | None,
    config: Path | None,
    vault: Path | None,
    key_file: Path | None,
    fmt: Format,
) -> None:
    settings = load_settings(config)
    accounts = [settings.account(a) for a in account] if account else list(settings.accounts)
    if not accounts:
        if config is None and not Path("vigile.toml").exists():
            where = "no ./vigile.toml here: give --config"
        else:
            where = f"none in {config or 'vigile.toml'}"
        raise ConfigError(f"no [[vault.accounts]] configured ({where}; docs/vault.md shows one)")
    root, secret = vault_root(settings, vault), vault_secret(settings, key_file)
    # The key derivation (argon2id for a passphrase vault) runs in C without the GIL: it
    # takes place while the rest of the backup code is imported and the first account
    # connects and logs in.
    with ThreadPoolExecutor(1) as pool:
        unlocking = pool.submit(unlock, root, secret)
        from vigile.vault.repo import Vault

        sources = {accounts[0].name: _connect(accounts[0])}
        try:
            store = Vault(root, unlocking.result(), writable=True, pack_size=settings.pack_size)
        except BaseException:
            _close(sources[accounts[0].name])
            raise
    rows, failed = [], []
    with store:
        for acc in accounts:
            source = sources.pop(acc.name, None) or _connect(acc)
            try:
                if isinstance(source, SourceError):
                    raise source
                rows.append(_backup_one(store, acc, source))
            except SourceError as e:  # the next account may well be reachable
                err_console.print(f"[bold red]{acc.name}:[/] {e}", highlight=False)
                failed.append(acc.name)
                rows.append({"account": acc.name, "error": str(e)})
            finally:
                _close(source)
    allow_quick_exit()  # the vault is closed: its packs, index and snapshots are durable
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
    if fmt is Format.TABLE:
        print_summary(rows)
    else:
        emit_rows(rows, columns, fmt)
    if failed:
        raise SourceError(f"backup failed for {len(failed)} account(s): {', '.join(failed)}")


def print_summary(rows: list[dict[str, Any]]) -> None:
    """Each account's run as a sentence: a table of twelve columns, the 42-character
    snapshot name among them, is unreadable at 80 columns (Rich shrank some to nothing).
    ``--json`` and ``--csv`` keep one column per counter."""
    for row in rows:
        if row.get("error"):  # printed when it happened, and named again on the last line
            continue
        changed = row["folders"] - row["folders_unchanged"]
        console.print(Text(f"{row['account']}: snapshot {row['snapshot']}"))
        text = (
            f"{row['folders']:,} folder(s), {changed:,} changed; {row['messages']:,} "
            f"message(s); {row['fetched']:,} fetched ({_size(row['bytes_fetched'])}), "
            f"{row['stored']:,} new to the vault; {row['flag_changes']:,} flag change(s), "
            f"{row['expunged']:,} expunged, {row['retries']:,} retried connection(s)"
        )
        console.print(Padding(Text(text), (0, 0, 0, 2)))


def _size(n: int) -> str:
    """``710 B``, ``1.5 MiB``: bytes as a person reads them."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@contextmanager
def _collecting_less() -> Iterator[None]:
    """Spare the garbage collector most of its passes over a backup's objects.

    The modules loaded so far live as long as the process: frozen, they are no longer
    traversed by every full collection. A backup allocates many short-lived containers
    (responses, entries, index rows), nearly all freed by reference counting, so young
    collections are made rarer. Both bound what waits to be collected (20,000 new
    objects at most), and together they took the collector's time in a 20,000-message
    full backup from 0.046 to 0.012 s (docs/benchmarks.md). The collector is as it was
    afterwards (for a caller that goes on in the same process, such as the tests).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _connect(acc: ImapAccount) -> RetryingSource | SourceError:
    """A connected source, or the error that prevented it (reported with the account)."""
    from vigile.vault.imap import ImapSource
    from vigile.vault.source import RetryingSource

    try:
        return RetryingSource(lambda: ImapSource(acc))
    except SourceError as e:
        return e


def _close(source: RetryingSource | SourceError) -> None:
    if not isinstance(source, SourceError):
        source.close()


def _backup_one(store: Vault, acc: ImapAccount, source: RetryingSource) -> dict[str, Any]:
    """One account's run, with a progress bar of messages, bytes and rate on a terminal."""
    from vigile.vault.backup import backup_account

    if err_console.is_terminal:
        snap, stats = _with_progress_bar(acc.name, partial(backup_account, store, source))
    else:  # cron, a pipe: no bar to draw, nor its refresh thread taking turns with the run
        snap, stats = backup_account(store, source)
    return {"account": acc.name, "snapshot": snap.name, **vars(stats), "retries": source.retries}


T = TypeVar("T")


def _with_progress_bar(name: str, run: Callable[[Callable[[str, int], None]], T]) -> T:
    """``run(tick)`` under a progress bar that ``tick(folder, size)`` advances."""
    with progress_bar() as bar:
        task = bar.add_task(name, total=None, messages=0)
        seen = {"messages": 0, "bytes": 0, "shown": 0.0}

        def tick(folder: str, size: int) -> None:
            # Updating the bar costs more than storing a small message: ten times a second.
            seen["messages"] += 1
            seen["bytes"] += size
            if time.monotonic() - seen["shown"] >= 0.1:
                seen["shown"] = time.monotonic()
                bar.update(
                    task,
                    completed=seen["bytes"],
                    messages=seen["messages"],
                    description=f"{name} {folder}",
                )

        return run(tick)
