"""``vigile init``: write a commented default configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigile.cli.output import err_console
from vigile.config import DEFAULT_CONFIG
from vigile.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        path: Annotated[Path, typer.Argument(help="Where to write it.")] = Path("vigile.toml"),
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    ) -> None:
        """Write a commented default vigile.toml: internal networks, hosts, allowlists.

        Edit `internal` in its \\[network] section so it lists your own address ranges
        (including public addresses of your servers); vigile uses it to tell inbound from
        outbound.
        """
        if path.exists() and not force:
            raise ConfigError(f"{path} exists; use --force to overwrite it")
        path.write_text(DEFAULT_CONFIG, encoding="utf-8")
        err_console.print(f"wrote {path}", markup=False, highlight=False)
        # Commands read ./vigile.toml by themselves; another name must be given to each.
        config = "" if path == Path("vigile.toml") else f" --config {path}"
        err_console.print(
            f"next: list your address ranges in its [network] internal (your servers' public "
            f"addresses too), then `vigile ingest PATH{config}` and `vigile hunt{config}`",
            markup=False,
            highlight=False,
        )
