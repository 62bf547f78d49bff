"""``vigile status``: what the store holds."""

from __future__ import annotations

import typer

from vigile.cli.common import DEFAULT_DB, CsvOption, DbOption, JsonOption, open_store
from vigile.cli.output import choose_format, emit_rows
from vigile.schema import TRAFFIC_TABLES


def register(app: typer.Typer) -> None:
    @app.command()
    def status(
        db: DbOption = DEFAULT_DB, as_json: JsonOption = False, as_csv: CsvOption = False
    ) -> None:
        """Show what the store holds: rows and time span per table, inputs, findings."""
        fmt = choose_format(as_json, as_csv)
        store = open_store(db, read_only=True)
        try:
            rows = []
            for name in (*TRAFFIC_TABLES, "findings", "rejects"):
                has_ts = name in TRAFFIC_TABLES
                first, last = store.time_bounds(name) if has_ts else (None, None)
                rows.append(
                    {"table": name, "rows": store.count(name), "first": first, "last": last}
                )
            sources = store.count("sources")
        finally:
            store.close()
        rows.append({"table": "sources", "rows": sources, "first": None, "last": None})
        emit_rows(rows, ["table", "rows", "first", "last"], fmt, title=f"Store {db}")
