"""Parser for the ``#Fields:`` log formats of IIS and Exchange.

Two families share one idea: comment lines start with ``#`` and a ``#Fields:`` line
names the columns of the lines that follow (it may change mid-file when the server
restarts with other settings).

* IIS W3C extended logs (``W3SVC*/u_ex*.log``): fields separated by single spaces,
  ``-`` for empty, date and time in UTC in the ``date`` and ``time`` columns.
* Exchange logs (HttpProxy, ECP server, OAB generator …): the ``#Fields:`` line and the
  rows are CSV (RFC 4180 quoting, commas inside quotes), times in ``DateTime`` or
  ``date-time`` as ISO 8601 UTC.

Written by hand because no maintained Python package reads both dialects with
``#Fields:`` changes mid-file and per-line error positions; the CSV side is the
standard library's :mod:`csv`.

Contract: :func:`parse_fields_log` never raises on content. Every non-comment line
yields either a :class:`FieldsRow` or a :class:`BadLine` with its line number and why.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

ISO_IN_TEXT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?Z?")
FRACTION = re.compile(r"\.\d{7,}")
#: Column names that hold a full timestamp, in order of preference.
TS_COLUMNS = ("DateTime", "date-time", "datetime", "Timestamp", "TimeStamp")


@dataclass(slots=True)  # one per log line: slots make it cheap to build
class FieldsRow:
    """One log line as a mapping from the current ``#Fields:`` names to values."""

    line: int
    ts: datetime | None
    fields: dict[str, str]
    raw: str


@dataclass(frozen=True)
class BadLine:
    """A line that could not be read: where and why."""

    line: int
    reason: str
    raw: str


@lru_cache(maxsize=8192)  # log lines share their second; parse each stamp once
def parse_time(value: str) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC, or ``None``.

    >>> parse_time("2021-03-03T04:05:06.789Z").isoformat()
    '2021-03-03T04:05:06.789000+00:00'
    >>> parse_time("2021-03-03 04:05:06").isoformat()
    '2021-03-03T04:05:06+00:00'
    >>> parse_time("yesterday") is None
    True
    """
    text = value.strip()
    if not text or text == "-":
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # .NET writes seven fractional digits; Python reads at most six.
    text = FRACTION.sub(lambda m: m.group(0)[:7], text)
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _split(body: str, csv_mode: bool) -> list[str]:
    if csv_mode:
        # Most rows have no quotes; a plain split is several times faster than csv.
        return next(csv.reader([body]), []) if '"' in body else body.split(",")
    return body.split(" ")


def _time_reader(names: list[str]) -> Callable[[dict[str, str]], datetime | None]:
    """How to read a row's time under these ``#Fields:`` (decided once per header)."""
    column = next((n for n in TS_COLUMNS if n in names), None)
    if column is not None:
        return lambda fields: parse_time(fields[column])
    if "date" in names and "time" in names:
        return lambda fields: parse_time(f"{fields['date']} {fields['time']}")
    return lambda fields: None


def parse_fields_log(
    lines: Iterable[str], headerless: bool = False
) -> Iterator[FieldsRow | BadLine]:
    """Rows of a ``#Fields:`` log, or bad lines with their position.

    With ``headerless``, lines before any ``#Fields:`` line are kept as rows with no
    fields (their raw text and the first ISO timestamp in them), for logs that some
    Exchange versions write without a header (OAB generator, ECP server).

    >>> rows = list(parse_fields_log([
    ...     "#Fields: date time cs-method cs-uri-stem sc-status",
    ...     "2021-03-03 04:05:06 POST /ecp/y.js 200",
    ...     "oops",
    ... ]))
    >>> rows[0].fields["cs-uri-stem"], rows[0].ts.isoformat()
    ('/ecp/y.js', '2021-03-03T04:05:06+00:00')
    >>> rows[1].line, rows[1].reason
    (3, 'expected 5 fields, found 1')
    """
    names: list[str] | None = None
    csv_mode = False
    for number, text in enumerate(lines, 1):
        body = text.rstrip("\r\n").lstrip("\ufeff")
        if not body.strip():
            continue
        if body.startswith("#"):
            if body.startswith("#Fields:"):
                spec = body[len("#Fields:") :].strip()
                csv_mode = "," in spec
                names = [n.strip() for n in _split(spec, csv_mode)]
                row_time = _time_reader(names)
            continue
        if names is None and headerless:
            stamp = ISO_IN_TEXT.search(body)
            yield FieldsRow(number, parse_time(stamp.group(0)) if stamp else None, {}, body)
            continue
        if names is None:
            yield BadLine(number, "data before any #Fields: line", body)
            continue
        try:
            values = _split(body, csv_mode)
        except csv.Error as e:
            yield BadLine(number, f"unreadable CSV: {e}", body)
            continue
        if len(values) != len(names):
            yield BadLine(number, f"expected {len(names)} fields, found {len(values)}", body)
            continue
        fields = {
            n: ("" if v == "-" and not csv_mode else v) for n, v in zip(names, values, strict=True)
        }
        yield FieldsRow(number, row_time(fields), fields, body)
