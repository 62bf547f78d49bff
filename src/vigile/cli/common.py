"""Options shared by several commands, declared once."""

from __future__ import annotations

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

    return DuckDBStore(db, read_only=read_only)


def read_config(path: Path | None) -> Config:
    return load_config(path)
