"""``vigile hunt``: ingest, run every registered detector, print ranked findings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

from vigile.cli.common import (
    DEFAULT_DB,
    ConfigOption,
    CsvOption,
    DbOption,
    JsonOption,
    open_store,
    read_config,
)
from vigile.cli.ingest import EXIT_INPUT_PROBLEMS, check_paths, reader_options, run_ingest
from vigile.cli.output import (
    Format,
    choose_format,
    console,
    emit_rows,
    err_console,
    working,
)
from vigile.detect import Finding, HuntContext, default_window, registered_detectors
from vigile.detect.allowlist import Allowlist
from vigile.errors import StoreError
from vigile.hunt import run_detectors, top_talkers, write_report
from vigile.schema import TRAFFIC_TABLES

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}


def print_ranked(findings: list[Finding], total: int, window: str) -> None:
    """Ranked findings as readable blocks: a heading line, then the explanation wrapped.

    A table with a sentence per row is unreadable at 80 columns, where most terminals
    and every pipe sit; blocks read the same at any width. The window scored comes
    first (traffic outside it is not scored), and each block ends with the finding's
    id, which `vigile explain` takes.
    """
    console.print(Text(f"Window: {window}", style="dim"))
    if not findings:
        console.print("No findings in the window.")
        return
    console.print(Text(f"Findings ({total} in all, ranked by score)", style="bold"))
    for rank, f in enumerate(findings, 1):
        subject = f.subject
        head = Text(f"{rank:>3}. ")
        head.append(f"{f.severity:<8}", style=_SEVERITY_STYLE.get(f.severity or "", ""))
        head.append(f" {f.score:.3f}  {f.detector:<16} {subject}")
        console.print(head)
        console.print(Padding(Text(f.explanation), (0, 0, 0, 5)))
        console.print(Padding(Text(f"id {f.id}", style="dim"), (0, 0, 0, 5)))
        if f.suppressed_by:
            console.print(
                Padding(Text(f"suppressed by {f.suppressed_by}", style="dim"), (0, 0, 0, 5))
            )


def _window_text(ctx: HuntContext) -> str:
    """The scored window in UTC to the minute, how it was chosen and how to widen it."""
    w = ctx.window
    start, end = (t.strftime("%Y-%m-%d %H:%M") if t else "…" for t in (w.start, w.end))
    return f"{start} → {end} UTC ({ctx.window_kind}; --window-hours widens it)"


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
                "(default: \\[hunt] window_hours in the config, 24 like RITA).",
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
        show_suppressed: Annotated[
            bool,
            typer.Option(
                "--show-suppressed",
                help="Also list findings an allowlist entry or a built-in prior suppressed, "
                "with the entry that suppressed each (see docs/allowlists.md).",
            ),
        ] = False,
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
        options = reader_options(cfg)
        # Mistakes in the configuration are told before anything is read or created.
        base = cfg.path.parent if cfg.path else None
        Allowlist.from_config(cfg.allowlist_files, cfg.section("allowlist"), base)
        if paths:
            check_paths(paths)
        elif not db.exists():  # do not leave an empty store behind
            raise StoreError(f"{db}: no store here yet; run `vigile ingest PATH` first")
        store = open_store(db)
        problems = False
        try:
            if paths:
                quiet = fmt is not Format.TABLE
                ingest_report = run_ingest(store, paths, None, quiet, options)
                problems = ingest_report.problems
                if ingest_report.problems:
                    first = next(
                        f for f in ingest_report.files if f.status in ("refused", "partial")
                    )
                    err_console.print(
                        f"[yellow]ingest problem:[/] {escape(first.message or '')}", highlight=False
                    )
            if not any(store.count(t) for t in TRAFFIC_TABLES):
                raise StoreError(
                    f"{db} holds no traffic yet: give logs or captures to read "
                    "(`vigile hunt PATH` or `vigile ingest PATH`; docs/inputs.md lists them)"
                )
            hours = window_hours if window_hours is not None else cfg.window_hours
            window = default_window(store, hours)
            ctx = HuntContext(
                store, cfg, window, f"last {hours:g} h ending at the newest connection"
            )
            detectors = registered_detectors()
            with working(f"hunting: {len(detectors)} detectors", fmt is Format.TABLE):
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
            if problems:
                raise typer.Exit(EXIT_INPUT_PROBLEMS)
            return
        shown = [f for f in findings if show_suppressed or f.suppressed_by is None]
        hidden = len(findings) - len(shown)
        if fmt is Format.JSON:
            for f in shown[:limit]:
                sys.stdout.write(json.dumps(f.to_json(), default=str) + "\n")
        elif fmt is Format.CSV:
            rows = [{"rank": i + 1, **f.to_json()} for i, f in enumerate(shown[:limit])]
            cols = ["rank", "score", "severity", "detector", "src", "dst", "fqdn", "explanation"]
            cols += ["suppressed_by"] if show_suppressed else []
            emit_rows(rows, cols, fmt)
        else:
            print_ranked(shown[:limit], len(shown), _window_text(ctx))
            if shown:
                err_console.print(
                    "`vigile explain ID` shows every number behind a finding.", highlight=False
                )
        if hidden and fmt is Format.TABLE:
            err_console.print(
                f"{hidden} finding(s) suppressed by allowlists or priors; "
                "--show-suppressed lists them with the entry that suppressed each.",
                highlight=False,
            )
        if problems:
            raise typer.Exit(EXIT_INPUT_PROBLEMS)
