"""``#Fields:`` logs read a block of rows at a time, for the large IIS and HttpProxy logs.

:func:`parse_fields_blocks` gives exactly the rows and bad lines of
:func:`vigile.exchange.fields.parse_fields_log` (same numbers, times, fields and
reasons; ``tests/test_exchange_blocks.py`` compares them), but as
:class:`FieldsBlock` values holding split rows instead of one dict per row.

Lines are taken :data:`BLOCK_ROWS` at a time. A chunk of plain data rows (no comment,
blank, BOM-led or, in CSV, unreadable line) is split with list comprehensions in one
go; any other chunk is read line by line. Written by hand because the columnar CSV
readers (``pyarrow.csv``) know neither ``#Fields:`` lines that change mid-file nor
the line number of each bad row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import islice
from operator import itemgetter

from vigile.exchange.fields import TS_COLUMNS, BadLine, _split, parse_time

#: Rows per :class:`FieldsBlock`: large enough that per-block work vanishes, small
#: enough that memory stays flat whatever the file's size.
BLOCK_ROWS = 2048
#: IIS writes ``-`` for an empty field (``DASH_EMPTY.get(v, v)`` reads a value).
DASH_EMPTY = {"-": ""}


@dataclass(slots=True)
class FieldsBlock:
    """Consecutive rows of one file under one ``#Fields:`` line, kept as split values.

    :meth:`fields` builds one row's mapping (as ``FieldsRow.fields``) on demand;
    :meth:`column` reads one field of every row as ``LogRecord.get`` would.
    """

    names: list[str]
    csv_mode: bool
    lines: list[int]
    values: list[list[str]]
    raws: list[str]
    ts: list[datetime | None]
    _columns: dict[str, list[str]] = field(default_factory=dict, repr=False)

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
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = self._read_column(name)
        return found

    def icolumn(self, name: str) -> list[str]:
        """Field ``name`` matched without case, as ``LogRecord.iget`` matches it."""
        if name in self.names:
            return self.column(name)
        lower = {n.lower(): n for n in _last_index(self.names)}
        found = lower.get(name.lower())
        return self.column(found) if found is not None else [""] * len(self.lines)

    def _read_column(self, name: str) -> list[str]:
        index = _last_index(self.names).get(name)
        if index is None:
            return [""] * len(self.lines)
        found = list(map(itemgetter(index), self.values))
        if not self.csv_mode and "-" in found:
            return list(map(DASH_EMPTY.get, found, found))
        return found


def _last_index(names: list[str]) -> dict[str, int]:
    """Where a name's value comes from: its last column, as ``dict(zip(…))`` keeps it."""
    return {n: i for i, n in enumerate(names)}


def _stamp_columns(names: list[str]) -> tuple[int, ...]:
    """The columns a row's time is read from (as ``fields._time_reader`` reads it)."""
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


class _Reader:
    """The state between chunks: the current ``#Fields:`` line and what follows from it."""

    def __init__(self) -> None:
        self.block: FieldsBlock | None = None
        self.width, self.sep = 0, " "
        self.stamps: tuple[int, ...] = ()

    def _header(self, body: str) -> FieldsBlock | None:
        """A ``#Fields:`` line: the block so far, if any, is done."""
        done = self.block if self.block is not None and self.block.lines else None
        spec = body[len("#Fields:") :].strip()
        csv_mode = "," in spec
        names = [n.strip() for n in _split(spec, csv_mode)]
        self.block = FieldsBlock(names, csv_mode, [], [], [], [])
        self.width = len(names)
        self.sep = "," if csv_mode else " "
        self.stamps = _stamp_columns(names)
        return done

    def times(self, values: list[list[str]]) -> list[datetime | None]:
        """The time of each row, each distinct stamp parsed once."""
        stamps = self.stamps
        if not stamps:
            return [None] * len(values)
        keys: list[str | tuple[str, str]] = list(map(itemgetter(*stamps), values))
        seen = dict.fromkeys(keys)
        dash = self.sep == " "
        for key in seen:
            seen[key] = parse_time(key) if isinstance(key, str) else _date_time(*key, dash)
        return list(map(seen.__getitem__, keys))

    def chunk(self, texts: list[str], first: int) -> Iterator[FieldsBlock | BadLine]:
        """The rows of ``texts`` (line ``first`` onwards), then the block if it has any."""
        bodies = [t.rstrip("\r\n") for t in texts]
        starts = {b[:1] for b in bodies}
        plain = self.block is not None and not any(
            c in ("", "#", "\ufeff") or c.isspace() for c in starts
        )
        values = self._split_all(bodies) if plain else None
        if values is None:
            yield from self._line_by_line(bodies, first)
        else:
            yield from self._add(values, bodies, first)
        if self.block is not None and self.block.lines:
            yield self.block
            self.block = FieldsBlock(self.block.names, self.block.csv_mode, [], [], [], [])

    def _split_all(self, bodies: list[str]) -> list[list[str]] | None:
        sep = self.sep
        if sep == " " or not any('"' in b for b in bodies):
            return [b.split(sep) for b in bodies]
        try:
            return [next(csv.reader([b]), []) if '"' in b else b.split(sep) for b in bodies]
        except csv.Error:
            return None  # line by line, to report the bad one

    def _add(self, values: list[list[str]], bodies: list[str], first: int) -> Iterator[BadLine]:
        """Rows of a plain chunk to the block, those of the wrong width as bad lines."""
        width = self.width
        numbers: list[int] | range = range(first, first + len(bodies))
        if set(map(len, values)) != {width}:
            kept = [i for i, v in enumerate(values) if len(v) == width]
            for i, v in enumerate(values):
                if len(v) != width:
                    yield BadLine(first + i, f"expected {width} fields, found {len(v)}", bodies[i])
            numbers = [first + i for i in kept]
            values, bodies = [values[i] for i in kept], [bodies[i] for i in kept]
        self._extend(numbers, values, bodies)

    def _extend(
        self, numbers: list[int] | range, values: list[list[str]], bodies: list[str]
    ) -> None:
        block = self.block
        assert block is not None  # rows come only after a #Fields: line
        block.lines.extend(numbers)
        block.values.extend(values)
        block.raws.extend(bodies)
        block.ts.extend(self.times(values))

    def _line_by_line(self, bodies: list[str], first: int) -> Iterator[FieldsBlock | BadLine]:
        """As ``parse_fields_log`` reads each line; good rows join the block in runs."""
        run: tuple[list[int], list[list[str]], list[str]] = ([], [], [])
        for number, body in enumerate(bodies, first):
            body = body.lstrip("\ufeff")
            if not body.strip():
                continue
            if body.startswith("#"):
                if body.startswith("#Fields:"):
                    if run[0]:
                        self._extend(*run)
                        run = ([], [], [])
                    done = self._header(body)
                    if done is not None:
                        yield done
                continue
            if self.block is None:
                yield BadLine(number, "data before any #Fields: line", body)
                continue
            try:
                values = _split(body, self.sep == ",")
            except csv.Error as e:
                yield BadLine(number, f"unreadable CSV: {e}", body)
                continue
            if len(values) != self.width:
                yield BadLine(number, f"expected {self.width} fields, found {len(values)}", body)
                continue
            run[0].append(number)
            run[1].append(values)
            run[2].append(body)
        if run[0]:
            self._extend(*run)


def parse_fields_blocks(
    lines: Iterable[str], size: int = BLOCK_ROWS
) -> Iterator[FieldsBlock | BadLine]:
    """The rows of ``parse_fields_log`` (without ``headerless``) in blocks.

    Bad lines come as they are read; a block comes at the end of each chunk of
    ``size`` lines and when the ``#Fields:`` line changes.

    >>> items = list(parse_fields_blocks(["#Fields: date time cs-uri-stem", "2021-03-03 04:05:06 /",
    ...     "oops", "2021-03-03 04:05:07 /ecp/y.js"]))
    >>> [type(i).__name__ for i in items], items[1].lines, items[1].column("cs-uri-stem")
    (['BadLine', 'FieldsBlock'], [2, 4], ['/', '/ecp/y.js'])
    """
    reader = _Reader()
    it = iter(lines)
    first = 1
    while chunk := list(islice(it, size)):
        yield from reader.chunk(chunk, first)
        first += len(chunk)
