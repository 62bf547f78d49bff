"""Every listing the CLI prints: a Rich table by default, ``--json`` or ``--csv``."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


#: Single-word cells up to this long are kept on one line (see :func:`emit_rows`).
SHORT = 13


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def choose_format(as_json: bool, as_csv: bool) -> Format:
    if as_json and as_csv:
        from vigile.errors import ConfigError

        raise ConfigError("choose one of --json and --csv")
    return Format.JSON if as_json else Format.CSV if as_csv else Format.TABLE


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def emit_rows(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: Format, title: str | None = None
) -> None:
    """Print ``rows`` (only ``columns``, in that order) in the chosen format."""
    if fmt is Format.JSON:
        for row in rows:
            sys.stdout.write(json.dumps({k: _plain(row.get(k)) for k in columns}, default=str))
            sys.stdout.write("\n")
        return
    if fmt is Format.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(k) is None else _plain(row.get(k)) for k in columns])
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    for i, c in enumerate(columns):
        # A column of short single words (a status, a count, a format) is never wrapped:
        # a narrow terminal takes its width from the others (paths, messages), which
        # wrap at spaces and fold long words.
        atomic = all(len(r[i]) <= SHORT and " " not in r[i] for r in cells)
        table.add_column(c, overflow="fold", no_wrap=atomic and len(c) <= SHORT)
    for r in cells:
        # Text, not str: cells quote logs and traffic, which must never be read as markup.
        table.add_row(*(Text(cell) for cell in r))
    console.print(table)
