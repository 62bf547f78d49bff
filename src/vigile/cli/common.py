"""Options shared by several commands, declared once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigile.config import Config, load_config

if TYPE_CHECKING:  # imported in open_store: commands without a store do not load DuckDB
    from vigile.store.duckdb import DuckDBStore

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="VIGILE_DB", help="The store: a DuckDB file (created if missing)."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="VIGILE_CONFIG",
        help="Network model (TOML). Default: ./vigile.toml if present.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="CSV with a header row.")]
DEFAULT_DB = Path("vigile.duckdb")


def open_store(db: Path, *, read_only: bool = False) -> DuckDBStore:
    if read_only and not db.exists():
        from vigile.errors import StoreError

        raise StoreError(f"{db}: no store here yet; run `vigile ingest` first")
    from vigile.store.duckdb import DuckDBStore

    wait = store_wait()
    return DuckDBStore(db, read_only=read_only, wait=wait, on_wait=_tell_waiting(db, wait))


def store_wait() -> float:
    """Seconds a command waits while another process writes the store (``VIGILE_STORE_WAIT``).

    DuckDB lets one process at a time open a file for writing, and no other process
    open it while it does; ``collect`` holds the store only while it writes a batch, and
    ``serve`` while it answers a request.
    """
    text = os.environ.get("VIGILE_STORE_WAIT", "30")
    try:
        return max(0.0, float(text))
    except ValueError:
        from vigile.errors import ConfigError

        raise ConfigError(f"VIGILE_STORE_WAIT={text!r} is not a number of seconds") from None


def _tell_waiting(db: Path, wait: float) -> Callable[[str], None]:
    def tell(holder: str) -> None:
        from vigile.cli.output import err_console

        err_console.print(f"{db} is {holder}; waiting up to {wait:g} s for it", markup=False)

    return tell


def read_config(path: Path | None) -> Config:
    return load_config(path)
