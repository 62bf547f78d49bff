"""Parquet tables in vigile's schema (``vigile simulate --format parquet``, Spark, DuckDB).

Recognised by Parquet's magic ``PAR1`` at the start (the end is checked when read).
Which table a file holds and how its columns map is decided once, from the footer
(:mod:`.parquet_columns`); then the file is read one row group at a time, in batches,
with pyarrow's C++ reader, so memory is bounded by a row group, not the file.

Positions are row numbers in the file (1-based). A row whose required value is null or
whose value does not fit the schema is rejected with its row number. A row group that
cannot be decoded (damaged pages) is rejected as one record at its first row, saying
how many rows were lost, and the row groups after it are still read: the footer,
which Parquet writes last, says where each one is. A file without its footer (cut
short) cannot be located at all and is refused whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vigile.errors import InputError, Location
from vigile.ingest.base import Sink, SourceFile
from vigile.ingest.parquet_columns import (
    ColumnError,
    Plan,
    castable,
    convert,
    flatten,
    plan_columns,
)
from vigile.ingest.zeek_fields import normalise
from vigile.schema import TRAFFIC_TABLES

MAGIC = b"PAR1"
BATCH_ROWS = 64 * 1024
#: What pyarrow raises for a damaged file (thrift, page, decompression errors).
_ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError, MemoryError)


def _brief(e: BaseException) -> str:
    """pyarrow's message, first line only and not too long (it can quote a page)."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text).rstrip(": ")
    return text if len(text) <= 160 else text[:157] + "..."


def _value(column: pa.ChunkedArray, i: int) -> object:
    """Row ``i``'s value for a message or a kept-aside record, whatever is wrong with it."""
    one = column.slice(int(i), 1).combine_chunks()
    try:
        return one.to_pylist()[0]
    except (OverflowError, ValueError, pa.ArrowException):
        pass
    if pa.types.is_timestamp(one.type):  # beyond what a date can show: its raw number
        return f"{one.view(pa.int64())[0].as_py()} ({one.type.unit} since 1970)"
    try:
        data = pc.cast(one, pa.binary())[0].as_py()
        return data.decode("utf-8", "backslashreplace") if data is not None else None
    except (ValueError, pa.ArrowException):
        return f"<unreadable {one.type}>"


class ParquetReader:
    """Parquet files holding one of vigile's traffic tables."""

    name: ClassVar[str] = "parquet"
    position_unit: ClassVar[str] = "record"
    description: ClassVar[str] = "Parquet tables in vigile's schema (or with Zeek's field names)"

    def __init__(self, batch_rows: int = BATCH_ROWS) -> None:
        """``batch_rows`` is the most rows converted at once (not an option)."""
        self.batch_rows = batch_rows

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def read(self, source: SourceFile, sink: Sink) -> None:
        where = Location(source.path)
        if source.compression is not None:
            raise InputError(
                where,
                f"Parquet inside {source.compression}: decompress it first "
                "(Parquet compresses its own pages)",
            )
        with source.path.open("rb") as f:
            f.seek(max(0, source.size - len(MAGIC)))
            if source.size < 12 or f.read(len(MAGIC)) != MAGIC:
                raise InputError(
                    where, "no Parquet footer (PAR1) at the end: the file is cut or damaged"
                )
        try:
            pf = pq.ParquetFile(source.path)
        except _ARROW_ERRORS as e:
            raise InputError(where, f"unreadable Parquet footer: {_brief(e)}") from None
        with pf:
            plan = self._plan(pf, source)
            sink.set_log_type(plan.table)
            if plan.ignored:
                sink.notice(
                    f"column(s) not in the {plan.table} table ignored: " + ", ".join(plan.ignored)
                )
            self._read_groups(pf, plan, source, sink)

    @staticmethod
    def _plan(pf: pq.ParquetFile, source: SourceFile) -> Plan:
        where = Location(source.path)
        try:
            plan = plan_columns(pf.schema_arrow)
        except ColumnError as e:
            raise InputError(where, str(e)) from None
        except _ARROW_ERRORS as e:
            raise InputError(where, f"unreadable Parquet schema: {_brief(e)}") from None
        flat = flatten(pa.Table.from_batches([], pf.schema_arrow)).schema
        target = TRAFFIC_TABLES[plan.table].arrow_schema
        for name, column in plan.columns.items():
            have, want = flat.field(name).type, target.field(column).type
            if not castable(have, want):
                raise InputError(
                    where, f"column {name!r} is {have}, which cannot become {column} ({want})"
                )
        return plan

    def _read_groups(self, pf: pq.ParquetFile, plan: Plan, source: SourceFile, sink: Sink) -> None:
        top = [
            f.name
            for f in pf.schema_arrow
            if f.name in plan.columns or any(c.startswith(f.name + ".") for c in plan.columns)
        ]
        total = max(1, pf.metadata.num_rows)
        first = 1
        for group in range(pf.num_row_groups):
            rows = pf.metadata.row_group(group).num_rows
            done = 0
            batches = pf.iter_batches(self.batch_rows, row_groups=[group], columns=top)
            # Only decoding is guarded: an error in what follows is not damage in the file.
            while True:
                batch = self._next(batches, group, rows - done, first + done, sink)
                if batch is None:
                    break
                self._emit(flatten(pa.Table.from_batches([batch])), plan, first + done, sink)
                done += batch.num_rows
                sink.progress(source.size * (first - 1 + done) // total)
            first += rows

    @staticmethod
    def _next(
        batches: Iterator[pa.RecordBatch], group: int, rows: int, first: int, sink: Sink
    ) -> pa.RecordBatch | None:
        """The next batch of a row group (``rows`` rows, the first at ``first``), or None
        at its end or where it is damaged: the rest of the group is then one reject."""
        try:
            batch = next(batches, None)
            if batch is not None:
                # A damaged page can decode into values that point nowhere (a dictionary
                # index past its dictionary): found here, as damage, not later as a crash.
                batch.validate(full=True)
            return batch
        except _ARROW_ERRORS as e:
            sink.reject(
                first,
                f"row group {group + 1} cannot be read from here ({rows:,} rows lost): {_brief(e)}",
            )
            return None

    @staticmethod
    def _emit(batch: pa.Table, plan: Plan, first: int, sink: Sink) -> None:
        n = batch.num_rows
        schema = TRAFFIC_TABLES[plan.table].arrow_schema
        out: dict[str, pa.Array] = {}
        bad = np.zeros(n, dtype=bool)
        reasons: dict[int, str] = {}
        for name, column in plan.columns.items():
            arr, col_bad = convert(batch.column(name).combine_chunks(), schema.field(column).type)
            out[column] = arr
            if col_bad is not None:
                for i in np.flatnonzero(col_bad & ~bad):
                    reasons[int(i)] = f"bad value for {name}: {_value(batch.column(name), int(i))}"
                bad |= col_bad
        for name, column in plan.columns.items():
            if not schema.field(column).nullable:
                null = out[column].is_null().to_numpy(zero_copy_only=False) & ~bad
                for i in np.flatnonzero(null):
                    reasons[int(i)] = f"required column {name} is null"
                bad |= null
        rows = np.arange(first, first + n, dtype=np.int64)
        for i in np.flatnonzero(bad):
            record = {name: _value(batch.column(name), int(i)) for name in batch.column_names}
            raw = json.dumps(record, default=str)
            sink.reject(int(rows[i]), reasons[int(i)], raw)
        if bad.any():
            keep = pa.array(~bad)
            out = {k: pc.filter(v, keep) for k, v in out.items()}
            rows = rows[~bad]
        if "open" in schema.names and "open" not in out:
            out["open"] = pa.array(np.zeros(len(rows), dtype=bool))
        normalise(plan.table, out)
        out["source_pos"] = pa.array(rows)
        sink.emit(plan.table, out, len(rows))
