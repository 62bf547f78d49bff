"""The inspection as a Markdown report an admin can file or send on.

Same content as the terminal output: ranked findings with their explanation and
source, the timeline, coverage per log source (oldest and newest entry) and the
files that could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from vigile.detect import Finding
from vigile.exchange.inspect import InspectResult


def _text(value: str) -> str:
    """Attacker-controlled text (URLs, scripts) shown, never rendered as HTML.

    >>> _text('<script runat="server">')
    '&lt;script runat="server"&gt;'
    """
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return _text(str(value)).replace("|", "\\|").replace("\n", " ")


def _when(f: Finding) -> str:
    if f.evidence.get("time_unknown"):
        return "time unknown"
    if f.window_end == f.window_start:
        return f"{f.window_start:%Y-%m-%d %H:%M:%S} UTC"
    return f"{f.window_start:%Y-%m-%d %H:%M:%S} to {f.window_end:%Y-%m-%d %H:%M:%S} UTC"


def render_report(
    result: InspectResult,
    inputs: Sequence[str],
    coverage: Sequence[Mapping[str, Any]],
    sources: Mapping[str, str],
) -> str:
    """Markdown of one inspection; ``sources`` maps a check's name to what it follows."""
    lines = ["# vigile Exchange inspection", "", f"Inputs: {', '.join(inputs)}", ""]
    timeline = result.timeline
    if timeline:
        lines += [
            f"**Compromise indicated**: {len(timeline)} events at high or critical, first "
            f"{_when(timeline[0])}, last {_when(timeline[-1])}.",
            "",
        ]
    else:
        lines += ["No event at high or critical. Check the coverage before calling it clean.", ""]
    lines += [f"## Findings ({len(result.findings)}, ranked by score)", ""]
    for rank, f in enumerate(result.findings, 1):
        subject = " ".join(x for x in (f.src, f.dst, f.fqdn) if x)
        lines += [
            f"### {rank}. {f.severity} {f.score:.2f} — {f.detector}",
            "",
            f"{_when(f)}; {_text(subject) or 'no subject'}; "
            f"source: {sources.get(f.detector, '-')}.",
            "",
            _text(f.explanation),
            "",
        ]
        if f.suppressed_by:
            lines += [f"Suppressed by {_text(f.suppressed_by)}.", ""]
        lines += [f"Evidence: `{f.evidence.get('where', '-')}`; finding id `{f.id}`.", ""]
    if timeline:
        lines += ["## Timeline", "", "| time | check | what |", "|---|---|---|"]
        lines += [f"| {_when(f)} | {f.detector} | {_cell(f.explanation)} |" for f in timeline]
        lines.append("")
    cols = ["source", "files", "rows", "bad_rows", "oldest", "newest", "note"]
    lines += ["## Coverage per log source", "", "| " + " | ".join(cols) + " |"]
    lines.append("|" + "---|" * len(cols))
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in cols) + " |" for row in coverage]
    lines.append("")
    problems = result.collection.problems
    if problems or result.collection.notices:
        lines += ["## Files not read and notices", ""]
        lines += [f"- not read: {_text(p.origin)}: {_text(p.message)}" for p in problems]
        lines += [f"- note: {_text(n)}" for n in result.collection.notices]
        lines.append("")
    return "\n".join(lines) + "\n"
