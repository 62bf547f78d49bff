"""``vigile report``: a self-contained report to read offline or send on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigile.cli.common import DEFAULT_DB, ConfigOption, DbOption, open_store, read_config
from vigile.cli.output import err_console
from vigile.errors import StoreError
from vigile.schema import TRAFFIC_TABLES


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        html: Annotated[
            Path,
            typer.Option("--html", help="Write the report to this HTML file.", show_default=False),
        ],
        db: DbOption = DEFAULT_DB,
        config: ConfigOption = None,
        top: Annotated[
            int, typer.Option("--top", "-n", min=1, help="Detail this many top-scored hosts.")
        ] = 5,
    ) -> None:
        """Write the console's content for the top hosts to one self-contained HTML file.

        The file embeds its plots, their data and the plotting code, loads nothing from
        anywhere, and opens offline in any browser. Run `vigile hunt` first.
        """
        from vigile.web.report import write_report

        store = open_store(db, read_only=True)
        try:
            if not store.count("findings") and not any(store.count(t) for t in TRAFFIC_TABLES):
                raise StoreError(
                    f"{db} holds no traffic and no findings, so a report would be empty: "
                    "run `vigile hunt PATH` (or `vigile inspect exchange PATH`) first"
                )
            size = write_report(html, store, read_config(config), top)
        finally:
            store.close()
        err_console.print(f"wrote {html} ({size / 1e6:.1f} MB)", highlight=False)
