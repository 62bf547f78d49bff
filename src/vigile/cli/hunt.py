"""``vigile hunt``: ingest, run every registered detector, print ranked findings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vigile.cli.common import (
    DEFAULT_DB,
    ConfigOption,
    CsvOption,
    DbOption,
    JsonOption,
    open_store,
    read_config,
)
from vigile.cli.ingest import EXIT_INPUT_PROBLEMS, run_ingest
from vigile.cli.output import Format, choose_format, console, emit_rows, err_console
from vigile.detect import HuntContext, default_window, registered_detectors
from vigile.hunt import run_detectors, top_talkers, write_report


def register(app: typer.Typer) -> None:
    @app.command()
    def hunt(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(
                help="Logs, captures or directories to ingest first (optional).", show_default=False
            ),
        ] = None,
        db: DbOption = DEFAULT_DB,
        config: ConfigOption = None,
        window_hours: Annotated[
            float | None,
            typer.Option(
                "--window-hours",
                help="Score this many hours ending at the newest connection "
                "(default: [hunt] window_hours in the config, 24 like RITA).",
            ),
        ] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", help="Show this many findings.")] = 25,
        report: Annotated[
            Path | None,
            typer.Option(
                "--report",
                help="Also write the ranked, explained findings to this file (Markdown).",
            ),
        ] = None,
        as_json: JsonOption = False,
        as_csv: CsvOption = False,
    ) -> None:
        """Hunt for compromised hosts: ingest PATHS (if given), run every detector, rank.

        Findings are scored 0-1, ranked, and explained in one sentence each; `--json`
        prints one finding per line with all its evidence (see docs/findings.md).
        Findings are kept in the store for `vigile explain` and the console.
        """
        fmt = choose_format(as_json, as_csv)
        cfg = read_config(config)
        store = open_store(db)
        problems = False
        try:
            if paths:
                ingest_report = run_ingest(store, paths, None, quiet=fmt is not Format.TABLE)
                problems = ingest_report.problems
                if ingest_report.problems:
                    first = next(
                        f for f in ingest_report.files if f.status in ("refused", "partial")
                    )
                    err_console.print(
                        f"[yellow]ingest problem:[/] {escape(first.message or '')}", highlight=False
                    )
            hours = window_hours if window_hours is not None else cfg.window_hours
            window = default_window(store, hours)
            ctx = HuntContext(
                store, cfg, window, f"last {hours:g} h ending at the newest connection"
            )
            detectors = registered_detectors()
            findings = run_detectors(ctx, detectors)
            talkers = top_talkers(store, window) if not detectors else []
        finally:
            store.close()
        if report is not None:
            write_report(report, ctx, detectors, findings, talkers)
        if not detectors:
            err_console.print(
                "No detectors are registered, so nothing was scored. Top talkers in the window:",
                highlight=False,
            )
            emit_rows(
                talkers,
                ["src", "dst", "connections", "bytes_out", "bytes_in"],
                fmt,
                title="Top talkers",
            )
        elif fmt is Format.JSON:
            for f in findings[:limit]:
                sys.stdout.write(json.dumps(f.to_json(), default=str) + "\n")
        else:
            rows = [{"rank": i + 1, **f.to_json()} for i, f in enumerate(findings[:limit])]
            cols = ["rank", "score", "severity", "detector", "src", "dst", "fqdn", "explanation"]
            emit_rows(rows, cols, fmt, title=f"Findings ({len(findings)} in all)")
            if fmt is Format.TABLE and not findings:
                console.print("No findings in the window.")
        if problems:
            raise typer.Exit(EXIT_INPUT_PROBLEMS)
