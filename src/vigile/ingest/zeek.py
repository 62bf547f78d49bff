"""Zeek logs: TSV (with ``#`` headers) and JSON lines, plain or gzipped.

Both readers parse whole blocks of lines at a time with Apache Arrow's C++ CSV and
JSON parsers instead of looping over lines in Python: that is what makes ingest run
at a useful fraction of DuckDB's own CSV reader (see docs/benchmarks.md). Python
only walks the few ``#`` lines and the rows that fail to parse.

Positions are line numbers (1-based, counting header lines), so a rejected row is
reported as ``file:line``.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from vigile.errors import InputError, Location
from vigile.ingest.base import Sink, SkipSource, SourceFile
from vigile.ingest.zeek_fields import (
    FIELD_MAP,
    KNOWN_UNUSED,
    PATH_TABLE,
    REQUIRED,
    convert_tsv,
    normalise,
)
from vigile.schema import TRAFFIC_TABLES

BLOCK = 8 << 20
#: Zeek's conn-summary (trace-summary) reports sit beside rotated logs.
_SUMMARY = b">== Total ==="
_STREAM_ERRORS = (OSError, EOFError, zlib.error)


@dataclass
class _Block:
    """Complete lines of data starting at ``first_line``; ``cut`` if the file ended mid-line."""

    first_line: int
    data: bytes
    cut: bool = False


@dataclass
class _Comment:
    """A ``#`` line and its line number."""

    line: int
    text: str


@dataclass
class _Header:
    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)


def _blocks(stream: BinaryIO, sink: Sink) -> Iterator[_Block | _Comment]:
    """Yield data blocks and ``#`` lines (as text) in file order.

    A damaged compressed stream ends the iteration after the last complete line;
    the damage is reported as a rejected record at the line where it starts.
    """
    pending = b""
    line = 1
    counter = getattr(stream, "consumed_counter", None)
    while True:
        try:
            chunk = stream.read(BLOCK)
        except _STREAM_ERRORS as e:
            sink.reject(line, f"compressed data is damaged or cut here ({e})", pending[:200])
            pending = b""
            chunk = b""
        eof = not chunk
        data = pending + chunk
        if counter is not None:
            sink.progress(counter.consumed)
        if not data:
            return
        end = len(data) if eof else data.rfind(b"\n") + 1
        if end == 0:  # no newline yet: keep reading
            pending = data
            continue
        body, pending = data[:end], data[end:]
        cut = eof and not body.endswith(b"\n")
        yield from _split_comments(body, line, cut)
        line += body.count(b"\n") + (1 if cut else 0)
        if eof:
            return


def _split_comments(body: bytes, line: int, cut: bool) -> Iterator[_Block | _Comment]:
    """Separate ``#`` lines from data lines in a block of complete lines."""
    start = 0
    while start < len(body):
        if body[start : start + 1] == b"#":
            eol = body.find(b"\n", start)
            eol = len(body) if eol < 0 else eol
            yield _Comment(line, body[start:eol].decode("utf-8", "backslashreplace"))
            line += 1
            start = eol + 1
            continue
        next_hash = body.find(b"\n#", start)
        end = len(body) if next_hash < 0 else next_hash + 1
        chunk = body[start:end]
        yield _Block(line, chunk, cut and end == len(body))
        line += chunk.count(b"\n")
        start = end


def _blank_invalid_utf8(block: _Block, sink: Sink) -> bytes:
    """Zeek escapes every non-printable byte, so a line that is not UTF-8 is damaged:
    reject it and blank it (keeping line numbers) so the rest of the block parses."""
    try:
        block.data.decode("utf-8")
        return block.data
    except UnicodeDecodeError:
        pass
    lines = block.data.split(b"\n")
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            sink.reject(block.first_line + i, "not valid UTF-8 (Zeek escapes raw bytes)", line)
            lines[i] = b""
    return b"\n".join(lines)


class ZeekTsvReader:
    """Zeek's ASCII (TSV) log writer format."""

    name: ClassVar[str] = "zeek-tsv"
    position_unit: ClassVar[str] = "line"
    description: ClassVar[str] = "Zeek TSV logs (#separator/#fields headers), plain or gzip"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if head.startswith(b"#separator ") or head.lstrip().startswith(_SUMMARY):
            return True
        # A Zeek log cut at the top: tab-separated lines starting with an epoch time.
        first = head.split(b"\n", 1)[0]
        cols = first.split(b"\t")
        return len(cols) >= 6 and cols[0].replace(b".", b"", 1).isdigit() and b"." in cols[0]

    def read(self, source: SourceFile, sink: Sink) -> None:
        if source.head.lstrip().startswith(_SUMMARY):
            raise SkipSource("Zeek conn-summary report: a text summary, not a log")
        header = _Header()
        in_header = True
        closed = False
        with source.open() as stream:
            for item in _blocks(stream, sink):
                if isinstance(item, _Comment):
                    if item.text.startswith("#close"):
                        closed = True
                        continue
                    if not in_header:
                        header, in_header = _Header(), True
                    try:
                        _parse_header_line(item.text, header)
                    except ValueError as e:
                        raise InputError(Location(source.path, line=item.line), str(e)) from None
                    continue
                if in_header:
                    self._check_header(header, source, item.first_line)
                    in_header = False
                self._read_block(item, header, source, sink)
        if in_header and header.path is None:
            raise InputError(Location(source.path), "not a Zeek log: no data and no header")
        if not closed:
            sink.notice("no #close trailer: the log was still being written or is cut")

    @staticmethod
    def _check_header(header: _Header, source: SourceFile, line: int) -> None:
        if not header.fields:
            raise InputError(
                Location(source.path, line=line),
                "not a Zeek log: no #fields header before the first data line "
                "(the top of the file is missing, so its columns are unknown)",
            )
        if header.path not in PATH_TABLE:
            raise SkipSource(f"Zeek '{header.path}' log: not used by vigile")
        table = PATH_TABLE[header.path]
        missing = [f for f in REQUIRED[table] if f not in header.fields]
        if missing:
            raise InputError(
                Location(source.path, line=line - 1),
                f"Zeek {header.path} log lacks required field(s): {', '.join(missing)}",
            )

    def _read_block(self, block: _Block, header: _Header, source: SourceFile, sink: Sink) -> None:
        assert header.path is not None
        table = PATH_TABLE[header.path]
        fields = [f or f"_unnamed_{i}" for i, f in enumerate(header.fields)]
        skipped: list[tuple[int, str, str]] = []
        data = _blank_invalid_utf8(block, sink)
        # The file ends without a newline: its last line is kept if it is whole.
        last_row = data.count(b"\n") + 1 if block.cut else -1
        if block.cut:
            sink.notice("the last line has no newline: the file may be cut")

        def on_invalid(row: pcsv.InvalidRow) -> str:
            n = row.number if row.number is not None else -1
            if n == last_row:
                skipped.append((n, "the file ends in the middle of this record", row.text))
            elif row.text:  # an empty line carries no data; anything else is kept aside
                why = f"expected {row.expected_columns} fields, found {row.actual_columns}"
                skipped.append((n, why, row.text))
            else:
                skipped.append((n, "", ""))
            return "skip"

        wanted = [f for f in fields if f in FIELD_MAP[table]]
        if not data:
            parsed = pa.table({f: pa.array([], pa.string()) for f in wanted})
        else:
            # Threads first: row numbers of bad rows are only known single-threaded, so a
            # block with a bad row (rare) is parsed again without threads.
            try:
                parsed = _parse_tsv(data, fields, wanted, header, on_invalid, threads=True)
                again = bool(skipped)
            except pa.ArrowInvalid:
                # A line longer than a thread's share of the block "straddles" two of
                # Arrow's blocks; parsed as one block, without threads, it cannot.
                again = True
            if again:
                skipped.clear()
                parsed = _parse_tsv(data, fields, wanted, header, on_invalid, threads=False)
        total = parsed.num_rows + len(skipped)
        lines = np.arange(block.first_line, block.first_line + total, dtype=np.int64)
        if skipped:
            drop = np.array([n - 1 for n, _, _ in skipped if n > 0], dtype=np.int64)
            for n, why, text in skipped:
                if why:
                    sink.reject(block.first_line + n - 1, why, text)
            lines = np.delete(lines, drop)
        _unknown_fields_notice(header.fields, table, sink)
        sink.set_log_type(header.path)
        columns = {f: parsed.column(f).combine_chunks() for f in wanted}
        self._emit(table, header, columns, lines, sink, header.path.startswith("open_"))

    @staticmethod
    def _emit(
        table: str,
        header: _Header,
        raw: Mapping[str, pa.Array],
        lines: np.ndarray,
        sink: Sink,
        is_open: bool,
    ) -> None:
        schema = TRAFFIC_TABLES[table].arrow_schema
        out: dict[str, pa.Array] = {}
        bad = np.zeros(len(lines), dtype=bool)
        reasons: dict[int, str] = {}
        for zeek_name, arr in raw.items():
            target = FIELD_MAP[table][zeek_name]
            conv = convert_tsv(arr, schema.field(target).type, header.set_separator, header.empty)
            out[target] = conv.array
            if conv.bad is not None:
                for i in np.flatnonzero(conv.bad & ~bad):
                    reasons[int(i)] = f"bad value for {zeek_name}: {arr[int(i)].as_py()!r}"
                bad |= conv.bad
        _emit_rows(table, out, lines, bad, reasons, raw, sink, is_open)


def _parse_tsv(
    data: bytes,
    fields: list[str],
    wanted: list[str],
    header: _Header,
    on_invalid: Callable[[pcsv.InvalidRow], str],
    *,
    threads: bool,
) -> pa.Table:
    """Parse a block of TSV lines into string columns (``-`` is null)."""
    block_size = max(1 << 20, (len(data) // 4 if threads else len(data)) + 1)
    return pcsv.read_csv(
        io.BytesIO(data),
        read_options=pcsv.ReadOptions(
            column_names=fields, use_threads=threads, block_size=block_size
        ),
        parse_options=pcsv.ParseOptions(
            delimiter=header.separator,
            quote_char=False,
            escape_char=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(fields, pa.string()),
            include_columns=wanted,
            null_values=[header.unset],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _emit_rows(
    table: str,
    out: dict[str, pa.Array],
    lines: np.ndarray,
    bad: np.ndarray,
    reasons: dict[int, str],
    raw: Mapping[str, pa.Array],
    sink: Sink,
    is_open: bool,
) -> None:
    """Reject rows with bad values or a missing required value; emit the rest."""
    for name in ("ts", "src", "dst"):
        if name in out:
            missing = out[name].is_null().to_numpy(zero_copy_only=False) & ~bad
            for i in np.flatnonzero(missing):
                reasons[int(i)] = f"required field {name} is unset"
            bad |= missing
    for i in np.flatnonzero(bad):
        record = "\t".join(str(a[int(i)].as_py()) for a in raw.values())
        sink.reject(int(lines[i]), reasons.get(int(i), "bad record"), record)
    keep = pa.array(~bad) if bad.any() else None
    n = int((~bad).sum())
    if keep is not None:
        out = {k: pc.filter(v, keep) for k, v in out.items()}
        lines = lines[~bad]
    normalise(table, out)
    if "open" in TRAFFIC_TABLES[table].column_names:
        out["open"] = pa.array(np.full(n, is_open))
    out["source_pos"] = pa.array(lines)
    sink.emit(table, out, n)


def _unknown_fields_notice(fields: list[str], table: str, sink: Sink) -> None:
    unknown = [
        f or f"(unnamed field {i + 1})"
        for i, f in enumerate(fields)
        if f not in FIELD_MAP[table] and f not in KNOWN_UNUSED
    ]
    if unknown:
        sink.notice(f"unknown field(s) ignored: {', '.join(unknown)}")


def _parse_header_line(line: str, header: _Header) -> None:
    if line.startswith("#separator "):
        value = line.split(" ", 1)[1].strip()
        sep = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
        if len(sep) != 1 or ord(sep) > 127 or sep in "\r\n#":
            raise ValueError(f"unsupported Zeek #separator {value!r} (one character expected)")
        header.separator = sep
        return
    key, _, value = line[1:].partition(header.separator)
    if key == "fields":
        header.fields = value.split(header.separator)
    elif key == "types":
        header.types = value.split(header.separator)
        # A trailing separator after the names adds no field unless a type stands for it.
        while len(header.fields) > len(header.types) and header.fields[-1] == "":
            header.fields.pop()
    elif key == "set_separator":
        header.set_separator = value
    elif key == "empty_field":
        header.empty = value
    elif key == "unset_field":
        header.unset = value
    elif key == "path":
        header.path = value


def _json_path(record: Mapping[str, object]) -> str | None:
    """The log path of a Zeek JSON record: ``_path`` if written, else from its fields."""
    path = record.get("_path")
    if isinstance(path, str):
        return path
    if "conn_state" in record or ("proto" in record and "orig_bytes" in record):
        return "conn"
    if "query" in record or "qtype" in record or "trans_id" in record:
        return "dns"
    if "method" in record or "status_code" in record or "trans_depth" in record:
        return "http"
    if "server_name" in record or "cipher" in record or "established" in record:
        return "ssl"
    return None


class ZeekJsonReader:
    """Zeek's JSON log writer format (``LogAscii::use_json=T``): one object per line."""

    name: ClassVar[str] = "zeek-json"
    position_unit: ClassVar[str] = "line"
    description: ClassVar[str] = "Zeek JSON logs (one object per line), plain or gzip"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        first = head.lstrip().split(b"\n", 1)[0].strip()
        if not first.startswith(b"{"):
            return False
        return b'"id.orig_h"' in first and b'"ts"' in first

    def read(self, source: SourceFile, sink: Sink) -> None:
        path: str | None = None
        with source.open() as stream:
            for item in _blocks(stream, sink):
                if isinstance(item, _Comment):  # a '#' line is not JSON
                    continue
                records, lines = _json_records(item, sink)
                if not records:
                    continue
                if path is None:
                    path = _json_path(records[0])
                    if path is None:
                        raise InputError(
                            Location(source.path, line=int(lines[0])),
                            "not a Zeek log: cannot tell which log this is",
                        )
                    if path not in PATH_TABLE:
                        raise SkipSource(f"Zeek '{path}' log: not used by vigile")
                    sink.set_log_type(path)
                    table = PATH_TABLE[path]
                    missing = [f for f in REQUIRED[table] if f not in records[0]]
                    if missing:
                        raise InputError(
                            Location(source.path, line=int(lines[0])),
                            f"Zeek {path} log lacks required field(s): {', '.join(missing)}",
                        )
                self._emit(PATH_TABLE[path], path, records, lines, sink)

    @staticmethod
    def _emit(
        table: str, path: str, records: list[dict[str, object]], lines: np.ndarray, sink: Sink
    ) -> None:
        mapping = FIELD_MAP[table]
        seen = {k for r in records[:100] for k in r}
        _unknown_fields_notice(sorted(seen), table, sink)
        schema = TRAFFIC_TABLES[table].arrow_schema
        out: dict[str, pa.Array] = {}
        raw: dict[str, pa.Array] = {}
        bad = np.zeros(len(records), dtype=bool)
        reasons: dict[int, str] = {}
        for zeek_name, target in mapping.items():
            values = [r.get(zeek_name) for r in records]
            arr, col_bad = _json_column(values, schema.field(target).type)
            out[target] = arr
            raw[zeek_name] = pa.array([None if v is None else str(v) for v in values])
            for i in np.flatnonzero(col_bad & ~bad):
                reasons[int(i)] = f"bad value for {zeek_name}: {values[int(i)]!r}"
            bad |= col_bad
        _emit_rows(table, out, lines, bad, reasons, raw, sink, path.startswith("open_"))


def _json_records(block: _Block, sink: Sink) -> tuple[list[dict[str, object]], np.ndarray]:
    """Parse a block of JSON lines; bad lines are rejected with their line numbers.

    The standard-library parser is used per line because a JSON block parser stops at
    the first bad line, and every good line around a bad one must still be read.
    """
    records: list[dict[str, object]] = []
    lines: list[int] = []
    text_lines = block.data.split(b"\n")
    if text_lines and text_lines[-1] == b"":
        text_lines.pop()
    for i, raw in enumerate(text_lines):
        n = block.first_line + i
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            cut = block.cut and i == len(text_lines) - 1
            why = "the file ends in the middle of this record" if cut else "not valid JSON"
            sink.reject(n, why, raw)
            continue
        if not isinstance(obj, dict):
            sink.reject(n, "not a JSON object", raw)
            continue
        records.append(obj)
        lines.append(n)
    return records, np.array(lines, dtype=np.int64)


def _json_column(values: list[object], target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Convert JSON values to ``target``; values of the wrong kind are marked bad."""
    bad = np.zeros(len(values), dtype=bool)
    out: list[object] = []
    for i, v in enumerate(values):
        try:
            out.append(_json_value(v, target))
        except (TypeError, ValueError, OverflowError):
            bad[i] = True
            out.append(None)
    return pa.array(out, target), bad


def _json_value(v: object, target: pa.DataType) -> object:
    if v is None:
        return None
    if pa.types.is_timestamp(target):
        if isinstance(v, str):
            return datetime.fromisoformat(v.replace("Z", "+00:00"))
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError
        return round(float(v) * 1_000_000)
    if pa.types.is_integer(target):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError
        if not -(2**31) <= v < 2**31 and target == pa.int32():
            raise ValueError
        return v
    if pa.types.is_floating(target):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError
        return float(v)
    if pa.types.is_boolean(target):
        if not isinstance(v, bool):
            raise TypeError
        return v
    if pa.types.is_list(target):
        if not isinstance(v, list):
            raise TypeError
        return [_json_value(x, target.value_type) for x in v]
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)
