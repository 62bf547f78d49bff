"""``vigile inspect exchange``: ProxyLogon/Hafnium traces in copies of an Exchange server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vigile.cli.common import (
    DEFAULT_DB,
    ConfigOption,
    DbOption,
    JsonOption,
    open_store,
    read_config,
)
from vigile.cli.ingest import EXIT_INPUT_PROBLEMS
from vigile.cli.output import Format, choose_format, console, emit_rows, err_console, working
from vigile.detect import Finding, findings_table
from vigile.errors import InputError, Location
from vigile.exchange import registered_checks
from vigile.exchange.collect import Coverage
from vigile.exchange.inspect import InspectResult, inspect_paths
from vigile.exchange.report import render_report
from vigile.exchange.suppress import parse_rules

inspect_app = typer.Typer(
    help="Inspect a server for what an intruder left behind.", no_args_is_help=True
)


def _when(f: Finding) -> str:
    if f.evidence.get("time_unknown"):
        return "time unknown"
    start, end = f"{f.window_start:%Y-%m-%d %H:%M:%S}", f"{f.window_end:%H:%M:%S}"
    return start if f.window_end == f.window_start else f"{start}-{end}"


#: Parts of a source whose absence blinds a check, and which checks.
EXPECTED_PARTS = {
    "httpproxy/Ecp": "the CVE-2021-27065 reset check",
    "event/Microsoft-Windows-Sysmon/Operational": "web shell writes (Sysmon 11)",
    "event/Security": "process starts (4688) when Sysmon is missing",
    "event/MSExchange Management": "virtual directory and mailbox export cmdlets",
    "event/Application": "Unified Messaging crashes (CVE-2021-26857)",
}


def inspected_source(server: str | None, paths: list[Path]) -> str:
    """The scope of an inspection: the server named, else the paths given (resolved).

    >>> inspected_source("EX01", [Path("copy")])
    'exchange:EX01'
    """
    name = server.strip() if server and server.strip() else None
    return f"exchange:{name or ', '.join(str(p.resolve()) for p in paths)}"


def _coverage_row(source: str, cov: Coverage | None, note: str) -> dict[str, Any]:
    return {
        "source": source,
        "files": None if source.strip().startswith("event/") else (cov.files if cov else 0),
        "rows": cov.rows if cov else 0,
        "bad_rows": cov.bad_rows if cov else 0,
        "oldest": cov.oldest if cov else None,
        "newest": cov.newest if cov else None,
        "note": (cov.first_error if cov else None) or note,
    }


def coverage_rows(result: InspectResult) -> list[dict[str, Any]]:
    """Per log source, then per HttpProxy folder and per event channel a check needs."""
    col = result.collection
    rows = []
    for kind, cov in col.coverage.items():
        rows.append(_coverage_row(kind, cov, "" if cov.files else "NO LOGS: not checked"))
        if not cov.files:
            continue
        prefix = f"{kind}/"
        shown = sorted(k for k in col.detail if k.startswith(prefix))
        if kind == "event":  # dozens of channels: show those the checks read
            shown = [k for k in shown if k in EXPECTED_PARTS]
        rows += [_coverage_row(f"  {key}", col.detail[key], "") for key in shown]
        for key, blind in EXPECTED_PARTS.items():
            if key.startswith(prefix) and key not in col.detail:
                rows.append(_coverage_row(f"  {key}", None, f"none: {blind} not checked"))
    return rows


def _print_tables(result: InspectResult, limit: int) -> None:
    # Explanations quote attacker-controlled text (URLs, user agents): never parse it as
    # Rich markup, a stray "[/]" would break the output.
    console.print(f"[bold]Findings[/] ({len(result.findings)} in all, ranked by score)")
    for i, f in enumerate(result.findings[:limit], 1):
        subject = " ".join(x for x in (f.src, f.fqdn) if x)
        console.print(
            f"{i:>3}. [bold]{f.severity}[/] {escape(f'{f.score:.2f}  {_when(f)}  {f.detector}')}"
            f"  {escape(subject)}",
            highlight=False,
        )
        console.print(f"     {f.explanation}", markup=False, highlight=False)
        if f.suppressed_by:
            console.print(f"     suppressed by {f.suppressed_by}", markup=False, highlight=False)
        console.print(f"     id {f.id}", style="dim", markup=False, highlight=False)
    if not result.findings:
        console.print("No findings. Check the coverage below before calling the server clean.")
    timeline = result.timeline
    if timeline:
        first, last = timeline[0], timeline[-1]
        console.print(f"\n[bold]Timeline[/] ({len(timeline)} events at high or critical)")
        console.print(
            f"first malicious event: {_when(first)} UTC  {first.explanation}",
            markup=False,
            highlight=False,
        )
        console.print(
            f"last malicious event:  {_when(last)} UTC  {last.explanation}",
            markup=False,
            highlight=False,
        )
        for f in timeline:
            console.print(
                f"  {_when(f)}  {f.detector}: {f.explanation}", markup=False, highlight=False
            )
    cols = ["source", "files", "rows", "bad_rows", "oldest", "newest", "note"]
    console.print()
    rows = [{**r, "note": escape(r["note"] or "")} for r in coverage_rows(result)]
    emit_rows(rows, cols, Format.TABLE, title="Coverage per log source")
    for notice in result.collection.notices:
        err_console.print(f"note: {notice}", markup=False, highlight=False)
    for p in result.collection.problems:
        err_console.print(f"not read: {p.origin}: {p.message}", markup=False, highlight=False)


def _print_json(result: InspectResult, limit: int) -> None:
    def out(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")

    for f in result.findings[:limit]:
        out({"type": "finding", **f.to_json()})
    timeline = result.timeline
    if timeline:
        out(
            {
                "type": "timeline",
                "first": timeline[0].window_start.isoformat(),
                "last": timeline[-1].window_end.isoformat(),
                "findings": [f.id for f in timeline],
            }
        )
    for row in coverage_rows(result):
        out({"type": "coverage", **row})
    for p in result.collection.problems:
        out({"type": "problem", "file": p.origin, "message": p.message})
    for n in result.collection.notices:
        out({"type": "notice", "message": n})


@inspect_app.command("exchange")
def exchange(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Folders copied off the Exchange server (Logging, inetpub, the install "
            "folder, exported events), a mounted disk image, files, or zip archives.",
            show_default=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show this many findings.")] = 50,
    store: Annotated[
        bool,
        typer.Option(
            "--store/--no-store",
            help="Write the findings to the store (replacing this server's earlier ones "
            "that this copy covers again) so `vigile serve` shows them.",
        ),
    ] = True,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Name of the server the copies come from. A rerun for the same server "
            "replaces its earlier findings from the files and from the time its logs "
            "cover; findings from logs no longer in the copy and other servers' findings "
            "stay. Default: the paths given, so name the server when its copies move.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write the findings, timeline and coverage to this file (Markdown).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Look for ProxyLogon/Hafnium traces in copies of an Exchange server's logs and files.

    Reads HttpProxy, ECP, OAB generator and IIS logs, Windows events (JSON lines or
    .evtx) and the file tree, runs the checks of Test-ProxyLogon.ps1, CISA AA21-062A,
    Volexity and the Sigma HAFNIUM rules, and prints ranked, explained findings, the
    timeline of malicious events and, per log source, the oldest and newest entry
    found, so "no hits" can be told apart from "no logs". Exit code 3 means some file
    could not be read (the rest was inspected).
    """
    fmt = choose_format(as_json, False)
    missing = [p for p in paths if not p.exists()]
    if missing and len(missing) == len(paths):
        raise InputError(Location(missing[0]), "no such file or folder")
    rules = parse_rules(read_config(config).section("exchange"))
    # A month of a busy server's logs takes minutes: a spinner with the time elapsed on
    # a terminal (nothing under cron or a pipe) says it is at work.
    with working(f"inspecting {', '.join(str(p) for p in paths)}", fmt is Format.TABLE):
        result = inspect_paths(paths, suppress=rules)
    source = inspected_source(server, paths)
    for finding in result.findings:
        finding.scope = source
    if store:
        db_store = open_store(db)
        # Imported here: the console's modules cost every other command 35 ms.
        from vigile.web.allowlist import apply_entries

        try:
            # One transaction: every check family's findings and their suppressions are
            # stored together or not at all. Per family, only what this copy covers is
            # replaced: findings from logs that have rotated away stay (InspectResult.runs).
            with db_store.state_writer() as w:
                for checks, scope, findings in result.runs(source):
                    w.replace_findings(checks, findings_table(findings), scope)
                # A rerun's findings come back without the console's suppressions (the
                # Exchange checks apply only [exchange] rules): put them back.
                apply_entries(db_store, w)
        finally:
            db_store.close()
    if report is not None:
        sources = {c.name: c.source for c in registered_checks()}
        text = render_report(result, [str(p) for p in paths], coverage_rows(result), sources)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text, encoding="utf-8")
    if fmt is Format.JSON:
        _print_json(result, limit)
    else:
        _print_tables(result, limit)
    if result.collection.problems:
        raise typer.Exit(EXIT_INPUT_PROBLEMS)


def register(app: typer.Typer) -> None:
    app.add_typer(inspect_app, name="inspect")
