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


#: Rows per :class:`FieldsBlock`: large enough that per-block work vanishes, small
#: enough that memory stays flat whatever the file's size.
BLOCK_ROWS = 2048


@dataclass(slots=True)
class FieldsBlock:
    """Consecutive rows of one file under one ``#Fields:`` line, kept as split values.

    Holds what :func:`parse_fields_log` would have yielded for these lines, without a
    dict per row: :meth:`fields` builds one row's mapping on demand, :meth:`column`
    reads one field of every row the way ``LogRecord.get`` would.
    """

    names: list[str]
    csv_mode: bool
    lines: list[int]
    values: list[list[str]]
    raws: list[str]
    ts: list[datetime | None]

    def __len__(self) -> int:
        return len(self.lines)

    def fields(self, i: int) -> dict[str, str]:
        """Row ``i`` as :attr:`FieldsRow.fields` (IIS ``-`` read as empty)."""
        dash = not self.csv_mode
        return {
            n: ("" if v == "-" and dash else v)
            for n, v in zip(self.names, self.values[i], strict=True)
        }

    def column(self, name: str) -> list[str]:
        """Field ``name`` of every row, ``""`` when absent or empty (``LogRecord.get``)."""
        index = _last_index(self.names).get(name)
        if index is None:
            return [""] * len(self.lines)
        if self.csv_mode:
            return [row[index] for row in self.values]
        return ["" if row[index] == "-" else row[index] for row in self.values]

    def icolumn(self, name: str) -> list[str]:
        """Field ``name`` matched without case, as ``LogRecord.iget`` matches it."""
        if name in self.names:
            return self.column(name)
        lower = {n.lower(): n for n in _last_index(self.names)}
        found = lower.get(name.lower())
        return self.column(found) if found is not None else [""] * len(self.lines)


def _last_index(names: list[str]) -> dict[str, int]:
    """Where a name's value comes from: its last column, as ``dict(zip(…))`` keeps it."""
    return {n: i for i, n in enumerate(names)}


def _stamp_columns(names: list[str]) -> tuple[int, ...]:
    """Columns :func:`_time_reader` reads: one full timestamp, ``date`` and ``time``, or none."""
    index = _last_index(names)
    column = next((n for n in TS_COLUMNS if n in index), None)
    if column is not None:
        return (index[column],)
    if "date" in index and "time" in index:
        return index["date"], index["time"]
    return ()


@lru_cache(maxsize=8192)
def _date_time(date: str, time: str, dash: bool) -> datetime | None:
    if dash:  # as the row's mapping reads them
        date, time = ("" if date == "-" else date), ("" if time == "-" else time)
    return parse_time(f"{date} {time}")


def parse_fields_blocks(
    lines: Iterable[str], size: int = BLOCK_ROWS
) -> Iterator[FieldsBlock | BadLine]:
    """The rows of :func:`parse_fields_log` (without ``headerless``) in blocks.

    Same lines, same numbers, same times, same bad lines with the same reasons
    (``tests/test_exchange_blocks.py`` compares the two on generated logs); bad lines
    come as soon as they are read, rows when ``size`` of them are gathered, the
    ``#Fields:`` line changes or the input ends.

    >>> items = list(parse_fields_blocks(["#Fields: date time cs-uri-stem", "2021-03-03 04:05:06 /",
    ...     "oops", "2021-03-03 04:05:07 /ecp/y.js"]))
    >>> [type(i).__name__ for i in items], items[1].lines, items[1].column("cs-uri-stem")
    (['BadLine', 'FieldsBlock'], [2, 4], ['/', '/ecp/y.js'])
    """
    block: FieldsBlock | None = None
    width, sep = 0, " "
    stamps: tuple[int, ...] = ()
    last_key: tuple[str, str] | str | None = None
    last_ts: datetime | None = None
    for number, text in enumerate(lines, 1):
        body = text.rstrip("\r\n")
        if body[:1] == "\ufeff":
            body = body.lstrip("\ufeff")
        if not body or (body[0].isspace() and not body.strip()):
            continue
        if body[0] == "#":
            if body.startswith("#Fields:"):
                if block is not None and block.lines:
                    yield block
                spec = body[len("#Fields:") :].strip()
                csv_mode = "," in spec
                names = [n.strip() for n in _split(spec, csv_mode)]
                block = FieldsBlock(names, csv_mode, [], [], [], [])
                width, sep, stamps = len(names), ("," if csv_mode else " "), _stamp_columns(names)
                last_key, last_ts = None, None
            continue
        if block is None:
            yield BadLine(number, "data before any #Fields: line", body)
            continue
        if sep == "," and '"' in body:
            try:
                values = next(csv.reader([body]), [])
            except csv.Error as e:
                yield BadLine(number, f"unreadable CSV: {e}", body)
                continue
        else:
            values = body.split(sep)
        if len(values) != width:
            yield BadLine(number, f"expected {width} fields, found {len(values)}", body)
            continue
        if len(stamps) == 1:
            key: tuple[str, str] | str = values[stamps[0]]
            if key != last_key:
                last_key, last_ts = key, parse_time(key)
        elif stamps:
            key = (values[stamps[0]], values[stamps[1]])
            if key != last_key:
                last_key, last_ts = key, _date_time(key[0], key[1], sep == " ")
        block.lines.append(number)
        block.values.append(values)
        block.raws.append(body)
        block.ts.append(last_ts)
        if len(block.lines) >= size:
            yield block
            block = FieldsBlock(block.names, block.csv_mode, [], [], [], [])
    if block is not None and block.lines:
        yield block
