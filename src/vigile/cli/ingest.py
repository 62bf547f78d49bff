"""``vigile ingest``: read logs, captures and flow files into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from vigile.cli.common import (
    DEFAULT_DB,
    CsvOption,
    DbOption,
    JsonOption,
    open_store,
    read_config,
)
from vigile.cli.output import Format, choose_format, emit_rows, err_console
from vigile.config import Config
from vigile.errors import ConfigError, InputError, Location
from vigile.ingest import (
    NOT_A_CANDIDATE,
    IngestReport,
    ReaderOptions,
    check_options,
    ingest_paths,
    registered_readers,
)
from vigile.schema import TRAFFIC_TABLES
from vigile.store import Store

#: Exit code when some input was refused or had bad records (the rest was stored).
EXIT_INPUT_PROBLEMS = 3
#: How many names of files left unread the table output lists.
SKIPPED_NAMES = 8

PathsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Files or directories (searched recursively). Gzip is read directly.",
        show_default=False,
    ),
]
SensorOption = Annotated[
    str | None, typer.Option("--sensor", help="Name of the sensor to record with every row.")
]
IngestConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="VIGILE_CONFIG",
        help="Configuration (TOML): its \\[ingest.pcap] table sets the flow inactivity "
        "timeouts of captures. Default: ./vigile.toml if present.",
    ),
]


def reader_options(config: Config) -> ReaderOptions:
    """The ``[ingest]`` section of the configuration (options by reader name), checked
    before the store is opened."""
    section = config.raw.get("ingest", {})
    if not isinstance(section, dict):
        raise ConfigError("[ingest] must be a table of [ingest.<reader>] tables")
    check_options(registered_readers(), section)
    return section


def check_paths(paths: list[Path]) -> None:
    """Refuse a path that does not exist before the store is opened (and created)."""
    for path in paths:
        if not path.exists():
            raise InputError(Location(path), "no such file or directory")


def run_ingest(
    store: Store,
    paths: list[Path],
    sensor: str | None,
    quiet: bool,
    options: ReaderOptions | None = None,
) -> IngestReport:
    """Ingest with a progress bar over the bytes to read."""
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True, disable=quiet) as bar:
        task = bar.add_task("ingest", total=None)
        return ingest_paths(
            store,
            paths,
            sensor=sensor,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda n: bar.advance(task, n),
            options=options,
        )


def print_report(report: IngestReport, fmt: Format) -> None:
    """One row per file, then a total line (table format) or nothing more (json/csv).

    JSON and CSV have a column per table; the table folds the counts into one ``rows``
    cell (``297,024 conn``) and the format and log type into one, so that it stays
    readable in an 80-column terminal or a cron mail.
    """
    tables = list(TRAFFIC_TABLES)
    if fmt is not Format.TABLE:
        rows = []
        for f in report.files:
            row = {
                "file": str(f.path),
                "status": f.status,
                "format": f.format,
                "log": f.log_type,
                "bad_rows": f.bad_rows,
                "message": f.message,
            }
            row.update({t: f.rows.get(t, 0) for t in tables})
            rows.append(row)
        emit_rows(rows, ["file", "status", "format", "log", *tables, "bad_rows", "message"], fmt)
        return
    shown = [
        {
            "file": str(f.path),
            "status": f.status,
            "format": "/".join(x for x in (f.format, f.log_type) if x) or None,
            "rows": ", ".join(f"{f.rows[t]:,} {t}" for t in tables if f.rows.get(t)) or None,
            "bad_rows": f.bad_rows,
            "message": f.message,
        }
        for f in report.files
        if f.status != "skipped" or f.format
    ]
    # A Zeek folder holds hundreds of logs vigile does not use, and a second run finds
    # every file a duplicate: many such rows are counted on one line each instead.
    folded = {
        status: rows
        for status in ("duplicate", "skipped")
        if len(rows := [r for r in shown if r["status"] == status]) > SKIPPED_NAMES
    }
    shown = [r for r in shown if r["status"] not in folded]
    columns = ["file", "status", "format", "rows", "bad_rows", "message"]
    if not any(r["bad_rows"] for r in shown):  # the total line below says "bad rows: 0"
        columns.remove("bad_rows")
    if shown:
        emit_rows(shown, columns, fmt, "Ingested files")
    for status, rows in folded.items():
        print_folded(status, rows)
    print_skipped_names(report)
    totals = report.totals()
    counts: dict[str, int] = {}
    for f in report.files:
        counts[f.status] = counts.get(f.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    rows_text = ", ".join(f"{totals[t]:,} {t}" for t in tables)
    bad = sum(f.bad_rows for f in report.files)
    err_console.print(
        f"{len(report.files)} files ({summary}); rows: {rows_text}; bad rows: {bad:,}",
        highlight=False,
    )
    first = next((f for f in report.files if f.status in ("refused", "partial")), None)
    if first is not None:
        err_console.print(
            f"[yellow]first problem:[/] {escape(first.message or '')}",
            highlight=False,
            soft_wrap=True,
        )


def print_folded(status: str, rows: list[dict[str, Any]]) -> None:
    """One line for many files of one status (duplicates, files skipped for their
    content such as Zeek logs vigile does not read), counted by message instead of a
    table row each: ``skipped 696 files (--json lists each): 72 × Zeek 'weird' log: …``."""
    reasons: dict[str, int] = {}
    for row in rows:
        reason = row["message"] or status
        reasons[reason] = reasons.get(reason, 0) + 1
    listed = "; ".join(f"{n:,} × {reason}" for reason, n in sorted(reasons.items()))
    err_console.print(
        f"[yellow]{status}[/] {len(rows):,} files (--json lists each): {escape(listed)}",
        highlight=False,
    )


def print_skipped_names(report: IngestReport, most: int = SKIPPED_NAMES) -> None:
    """One line naming, folder by folder, the files of a directory left unread for their
    names (not rows of the table, which lists what was read):
    ``in logs: README, notes.txt; in logs/old: vigile.toml and 3 more``."""
    paths = [f.path for f in report.files if f.status == "skipped" and not f.format]
    if not paths:
        return
    by_folder: dict[Path, list[str]] = {}
    for path in paths[:most]:
        by_folder.setdefault(path.parent, []).append(path.name)
    listed = "; ".join(f"in {folder}: {', '.join(names)}" for folder, names in by_folder.items())
    if len(paths) > most:
        listed += f" and {len(paths) - most:,} more"
    err_console.print(
        f"[yellow]not read[/] ({NOT_A_CANDIDATE}; name a file to read it anyway) {escape(listed)}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def ingest(
        paths: PathsArgument,
        db: DbOption = DEFAULT_DB,
        sensor: SensorOption = None,
        config: IngestConfigOption = None,
        as_json: JsonOption = False,
        as_csv: CsvOption = False,
    ) -> None:
        """Read Zeek logs, captures, EVE JSON, nfcapd and Parquet files into the store.

        Each file is stored whole or not at all, and a file already ingested (same
        content) is skipped, so running this twice adds nothing. Bad records are
        counted and kept in the store's `rejects` table with their file and line.
        Exit code 3 means some input was refused or had bad records. Flows are cut
        from captures with Zeek's inactivity timeouts unless the configuration's
        \\[ingest.pcap] table sets others.

        The format is recognised from each file's content. In a directory, only files
        named like logs, captures or tables (.log, .json, .gz, .pcap, .parquet, ...)
        are read; the others (README, vigile.toml) are named on one "not read" line.

        Prints one row per file: its status (ingested, duplicate, partial, refused,
        skipped), format and log type, the rows stored per table, bad rows and a
        message; then the totals. More than 8 duplicates, or files skipped for their
        content (Zeek logs vigile does not use), are counted on one line instead. With --json or
        --csv every table's count is a column of its own, and every file is a row.
        """
        fmt = choose_format(as_json, as_csv)
        options = reader_options(read_config(config))
        check_paths(paths)
        store = open_store(db)
        try:
            report = run_ingest(store, paths, sensor, fmt is not Format.TABLE, options)
        finally:
            store.close()
        print_report(report, fmt)
        if report.problems:
            raise typer.Exit(EXIT_INPUT_PROBLEMS)
