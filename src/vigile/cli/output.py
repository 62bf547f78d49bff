"""Every listing the CLI prints: a Rich table by default, ``--json`` or ``--csv``."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


#: Single-word cells up to this long are kept on one line (see :func:`emit_rows`).
SHORT = 13


#: A column cut to fit (:class:`Fit`) keeps at least this many cells while the terminal
#: leaves them (more if its header is longer).
CUT_FLOOR = 8


@dataclass(frozen=True)
class Fit:
    """How a listing of many columns fits a narrow terminal (``emit_rows(fit=...)``).

    ``whole`` columns are never wrapped nor cut (ids that are copied into another
    command); ``cut`` columns (free text: names, subjects) stay on one line and share
    what the others leave, cut with an ellipsis. The others first keep their full width,
    and wrap at spaces only when that would leave the cut ones under
    :data:`CUT_FLOOR`. Such a table is drawn without vertical rules, two spaces
    between columns, so that eight columns are readable at 80.
    """

    whole: tuple[str, ...] = ()
    cut: tuple[str, ...] = ()


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@contextmanager
def working(what: str, show: bool = True) -> Iterator[None]:
    """A spinner with ``what`` and the seconds elapsed on standard error while a long
    step without a measurable total runs (a hunt, an inspection); nothing when standard
    error is not a terminal, or when ``show`` is false (JSON and CSV output)."""
    if not (show and err_console.is_terminal):
        yield
        return
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        bar.add_task(escape(what), total=None)  # paths may hold "[...]": not markup
        yield


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
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    title: str | None = None,
    fit: Fit | None = None,
) -> None:
    """Print ``rows`` (only ``columns``, in that order) in the chosen format; ``fit``
    lays out the table for a narrow terminal (JSON and CSV are never cut)."""
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
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if fit is None:
        table = Table(title=title, title_justify="left", show_lines=False)
    else:
        table = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
    fitted = _fitted_widths(columns, cells, fit, console.width) if fit is not None else {}
    for i, c in enumerate(columns):
        if fit is not None and c in fit.cut:
            table.add_column(c, no_wrap=True, overflow="ellipsis", max_width=fitted[c])
            continue
        # A column of short single words (a status, a count, a format) is never wrapped:
        # a narrow terminal takes its width from the others (paths, messages), which
        # wrap at spaces and fold long words.
        atomic = all(len(r[i]) <= SHORT and " " not in r[i] for r in cells)
        whole = fit is not None and c in fit.whole
        table.add_column(
            c,
            overflow="fold",
            no_wrap=(atomic and len(c) <= SHORT) or whole,
            max_width=fitted.get(c),
        )
    for r in cells:
        # Text, not str: cells quote logs and traffic, which must never be read as markup.
        table.add_row(*(Text(cell) for cell in r))
    console.print(table)


def _fitted_widths(
    columns: Sequence[str], cells: Sequence[Sequence[str]], fit: Fit, width: int
) -> dict[str, int]:
    """Widths for a table ``width`` cells wide (see :class:`Fit`): of each cut column, and
    of the columns that must wrap to leave the cut ones room (their longest word).

    Computed here, not left to Rich: Rich shrinks the columns it may wrap below their
    longest word and, when that is not enough, every column evenly, ids included; a
    column that must not wrap but may be cut is not a case it knows.
    """
    full = {c: max([cell_len(c)] + [cell_len(r[i]) for r in cells]) for i, c in enumerate(columns)}
    least = {
        c: max(cell_len(w) for w in [c, *(w for r in cells for w in r[i].split())])
        for i, c in enumerate(columns)
    }
    others = [c for c in columns if c not in fit.cut]
    free = width - 2 * (len(columns) - 1)  # two spaces between columns
    floor = sum(min(full[c], max(CUT_FLOOR, cell_len(c))) for c in fit.cut)
    widths: dict[str, int] = {}
    left = free - sum(full[c] for c in others)
    if left < floor:  # the others wrap at spaces to leave room (whole ones cannot)
        widths = {c: least[c] for c in others if c not in fit.whole and least[c] < full[c]}
        left = free - sum(widths.get(c, full[c]) for c in others)
    # Narrowest first: a column that needs less than an even share leaves the rest.
    for n, c in enumerate(sorted(fit.cut, key=lambda c: full[c])):
        widths[c] = max(1, min(full[c], left // (len(fit.cut) - n)))
        left -= widths[c]
    return widths
