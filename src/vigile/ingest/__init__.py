"""The ingest pipeline: files in, normalised rows in the store.

Passes, in order, for every input path:

1. expand directories (recursively, in name order) into candidate files;
2. hash each file and skip it if the store already holds that content;
3. find the reader whose ``sniff`` recognises the content;
4. read it inside one store transaction (all rows of a file or none).

Readers are found through the entry point group ``vigile.readers``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.errors import ConfigError, InputError, Location, UnknownFormatError
from vigile.ingest.base import LEGACY_PREFIX, Reader, SkipSource, SourceFile
from vigile.schema import TRAFFIC_TABLES, conform
from vigile.store import SourceRecord, SourceSummary, SourceWriter, Store

ENTRY_POINT_GROUP = "vigile.readers"
#: In a directory, files with these endings are read; others (README, …) are listed as
#: not read. A file named on the command line is always read. (Content decides the
#: format either way; the names only keep notes and configuration out of a scan.)
CANDIDATE_SUFFIXES = (
    ".log",
    ".json",
    ".jsonl",
    ".ndjson",
    ".pcap",
    ".pcapng",
    ".cap",
    ".gz",
    ".bz2",
    ".labeled",
    ".eve",
    ".nfcapd",
    ".parquet",
    "nfcapd.",  # nfcapd names its files nfcapd.YYYYMMDDhhmm
)
MAX_RAW = 4096
#: The times a row may have, in microseconds since 1970: years 1 to 9999, what a date
#: can show. A time beyond them is a damaged value (a Zeek ``ts`` of 999999999999).
FIRST_TS_US, LAST_TS_US = -62_135_596_800_000_000, 253_402_300_799_999_999
#: Why a file in a directory was not read (its name is not one of the above).
NOT_A_CANDIDATE = "not a log, capture or table name"


#: Reader options by reader name (the ``[ingest]`` section of vigile.toml).
ReaderOptions = Mapping[str, Mapping[str, Any]]


def registered_readers() -> list[type[Reader]]:
    """Every reader installed under the entry point group, in name order."""
    return sorted((ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)), key=lambda r: r.name)


def check_options(readers: Sequence[type[Reader]], options: ReaderOptions) -> None:
    """Raise :class:`~vigile.errors.ConfigError` unless every reader takes its options."""
    names = {r.name: r for r in readers}
    for name, values in options.items():
        where = f"[ingest.{name}]"
        if name not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{where}: no reader is named {name!r} (readers: {known})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"[ingest] {name!r} must be a table ({where})")
        params = inspect.signature(names[name]).parameters.values()
        takes = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = [key for key in values if key not in takes]
        if unknown:
            listed = ", ".join(takes) or "none"
            raise ConfigError(f"{where}: unknown option {unknown[0]!r} (options: {listed})")
        try:
            names[name](**values)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None


@dataclass
class FileResult:
    """What happened to one file."""

    path: Path
    status: str  # ingested, partial, duplicate, skipped, refused
    format: str | None = None
    log_type: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    bad_rows: int = 0
    message: str | None = None


@dataclass
class IngestReport:
    """What an ingest run did, file by file."""

    files: list[FileResult] = field(default_factory=list)

    @property
    def problems(self) -> bool:
        """True if any file was refused or had bad records."""
        return any(f.status in ("refused", "partial") for f in self.files)

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(TRAFFIC_TABLES, 0)
        for f in self.files:
            for t, n in f.rows.items():
                out[t] = out.get(t, 0) + n
        return out


class _PipelineSink:
    """Conforms a reader's columns to the schema and writes them in the transaction."""

    def __init__(
        self,
        writer: SourceWriter,
        source: SourceFile,
        unit: str,
        sensor: str | None,
        on_progress: Callable[[int], None],
    ) -> None:
        self.writer = writer
        self.source = source
        self.unit = unit
        self.sensor = sensor
        self.summary = SourceSummary()
        self._on_progress = on_progress
        self._last_progress = 0

    def emit(self, table: str, columns: Mapping[str, pa.Array], num_rows: int) -> None:
        if num_rows == 0:
            return
        cols = dict(columns)
        cols["source_id"] = pa.array([self.source.source_id] * num_rows, pa.int64())
        if self.sensor is not None or "sensor" not in cols:
            cols["sensor"] = pa.array([self.sensor] * num_rows, pa.string())
        batch = conform(TRAFFIC_TABLES[table], cols, num_rows)
        batch = self._reject_impossible(batch)
        if batch.num_rows == 0:
            return
        self.writer.append(table, batch)
        s = self.summary
        s.rows[table] = s.rows.get(table, 0) + batch.num_rows
        lo, hi = pc.min_max(batch.column("ts")).values()
        lo, hi = lo.as_py(), hi.as_py()
        if lo is not None:
            s.first_ts = lo if s.first_ts is None else min(s.first_ts, lo)
            s.last_ts = hi if s.last_ts is None else max(s.last_ts, hi)

    def _reject_impossible(self, batch: pa.Table) -> pa.Table:
        """Rows no reader should have let through are rejected here, for every reader:
        a ``ts`` outside years 1-9999 (no date can show it, and every later step would
        fail on it) or a port outside 0-65535 (16 bits, RFC 9293 §3.1, RFC 768)."""
        checks = [("ts", FIRST_TS_US, LAST_TS_US, "time outside years 1-9999: {} µs since 1970")]
        checks += [
            (c, 0, 65_535, f"{c} outside 0-65535: {{}}")
            for c in ("src_port", "dst_port")
            if c in batch.column_names
        ]
        reasons: list[tuple[pa.Array, pa.Array, str]] = []
        for column, lo, hi, text in checks:
            values = pc.cast(batch.column(column), pa.int64())
            outside = pc.or_(pc.less(values, lo), pc.greater(values, hi)).fill_null(False)
            if pc.any(outside).as_py():
                reasons.append((outside, values, text))
        if not reasons:
            return batch
        bad = reasons[0][0]
        for outside, _, _ in reasons[1:]:
            bad = pc.or_(bad, outside)
        positions = batch.column("source_pos").to_pylist()
        found = [
            (positions[i] or 0, text.format(values[int(i)].as_py()))
            for outside, values, text in reasons
            for i in np.flatnonzero(outside.to_numpy(zero_copy_only=False))
        ]
        raw = self._lines({pos for pos, _ in found}) if self.unit == "line" else {}
        for pos, reason in sorted(found):
            self.reject(pos, reason, raw.get(pos))
        return batch.filter(pc.invert(bad))

    def _lines(self, wanted: set[int]) -> dict[int, bytes]:
        """The text of the given lines of the file, read again (the reader has moved on;
        such rows are rare, so a second pass over the file costs nothing in the usual
        case), so each rejected row is kept with its line."""
        out: dict[int, bytes] = {}
        last = max(wanted, default=0)
        with self.source.open() as stream:
            for number, line in enumerate(stream, start=1):
                if number in wanted:
                    out[number] = line.rstrip(b"\r\n")
                if number >= last:
                    break
        return out

    def reject(self, position: int, reason: str, raw: str | bytes | None = None) -> None:
        if isinstance(raw, bytes):
            raw = raw[:MAX_RAW].decode("utf-8", "backslashreplace")
        elif raw is not None:
            raw = raw[:MAX_RAW]
        self.writer.reject(position, self.unit, reason, raw)
        self.summary.bad_rows += 1
        if self.summary.first_error is None:
            where = {
                "line": Location(self.source.path, line=position),
                "record": Location(self.source.path, record=position),
            }.get(self.unit, Location(self.source.path, offset=position))
            self.summary.first_error = f"{where}: {reason}"

    def damaged(self, offset: int, why: str) -> None:
        """The compressed file is cut or damaged: what came before it is kept, the rest
        is one reject at the byte of the file (as stored) where reading stopped."""
        reason = f"compressed data is cut or damaged: {why}"
        self.writer.reject(offset, "byte", reason, None)
        self.summary.bad_rows += 1
        if self.summary.first_error is None:
            self.summary.first_error = f"{Location(self.source.path, offset=offset)}: {reason}"

    def notice(self, message: str) -> None:
        if message not in self.summary.notices:
            self.summary.notices.append(message)

    def set_log_type(self, log_type: str) -> None:
        self.summary.log_type = log_type

    def progress(self, raw_bytes: int) -> None:
        self._on_progress(raw_bytes - self._last_progress)
        self._last_progress = raw_bytes


def expand_paths(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """Files to read, each with whether it was named explicitly."""
    out: list[tuple[Path, bool]] = []
    for p in paths:
        if p.is_dir():
            for child in sorted(c for c in p.rglob("*") if c.is_file()):
                out.append((child, False))
        elif p.is_file():
            out.append((p, True))
        elif p.exists():  # a device or pipe: hashing it first would never end (/dev/zero)
            raise InputError(Location(p), "not a regular file (a device, pipe or socket)")
        else:
            raise InputError(Location(p), "no such file or directory")
    return out


def _is_candidate(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) or s in name for s in CANDIDATE_SUFFIXES)


def find_reader(source: SourceFile, readers: Iterable[type[Reader]]) -> type[Reader]:
    """The reader that recognises ``source``'s content."""
    for reader in readers:
        if reader.sniff(source.head):
            return reader
    if not source.head and source.compression is not None:
        raise UnknownFormatError(
            Location(source.path, offset=0),
            f"{source.compression} data cut or damaged before any content could be read",
        )
    if not source.head:
        raise UnknownFormatError(Location(source.path), "empty file: not a log, capture or table")
    raise UnknownFormatError(
        Location(source.path),
        "not a Zeek log, packet capture, flow file, Suricata EVE log or Parquet table "
        "(format is detected from content)",
    )


def _already_stored(store: Store, source: SourceFile) -> bool:
    """True if the store holds this content (under its own or the older hash)."""
    known = store.source_hashes(source.size)
    if source.content_hash in known:
        return True
    legacy = any(h.startswith(LEGACY_PREFIX) for h in known)
    return legacy and source.legacy_hash() in known


def ingest_file(
    store: Store,
    path: Path,
    readers: Sequence[type[Reader]],
    *,
    sensor: str | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
    options: ReaderOptions | None = None,
) -> FileResult:
    """Ingest one file (see the module docstring for the passes).

    ``options`` are the readers' options by reader name (checked beforehand with
    :func:`check_options`).
    """
    source = SourceFile.probe(path)
    if _already_stored(store, source):
        on_progress(source.size)
        return FileResult(path, "duplicate", message="already ingested (same content)")
    try:
        reader_cls = find_reader(source, readers)
    except UnknownFormatError as e:
        on_progress(source.size)
        return FileResult(path, "refused", message=str(e))
    record = SourceRecord(
        source.source_id, str(path), source.content_hash, source.size, reader_cls.name
    )
    try:
        with store.source_writer(record) as writer:
            sink = _PipelineSink(writer, source, reader_cls.position_unit, sensor, on_progress)
            reader_cls(**(options or {}).get(reader_cls.name, {})).read(source, sink)
            if source.damage is not None:
                sink.damaged(*source.damage)
            sink.progress(source.size)
            writer.finish(sink.summary)
    except SkipSource as e:
        on_progress(source.size)
        return FileResult(path, "skipped", reader_cls.name, message=str(e))
    except InputError as e:
        on_progress(source.size)
        return FileResult(path, "refused", reader_cls.name, message=str(e))
    s = sink.summary
    status = "partial" if s.bad_rows else "ingested"
    message = s.first_error or ("; ".join(s.notices) if s.notices else None)
    return FileResult(path, status, reader_cls.name, s.log_type, dict(s.rows), s.bad_rows, message)


def ingest_paths(
    store: Store,
    paths: Sequence[Path],
    *,
    sensor: str | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
    options: ReaderOptions | None = None,
) -> IngestReport:
    """Ingest files and directories; never raises for one bad file.

    Raises :class:`~vigile.errors.ConfigError`, before reading anything, if a
    reader does not take its ``options``.
    """
    readers = registered_readers()
    check_options(readers, options or {})
    report = IngestReport()
    files = expand_paths(paths)
    on_start(sum(p.stat().st_size for p, _ in files))
    for path, explicit in files:
        if not explicit and not _is_candidate(path):
            on_progress(path.stat().st_size)
            report.files.append(FileResult(path, "skipped", message=NOT_A_CANDIDATE))
            continue
        try:
            report.files.append(
                ingest_file(
                    store, path, readers, sensor=sensor, on_progress=on_progress, options=options
                )
            )
        except OSError as e:
            report.files.append(FileResult(path, "refused", message=f"{path}: {e.strerror or e}"))
    return report
