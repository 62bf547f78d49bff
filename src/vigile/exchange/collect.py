"""Walk the inputs and turn every file into :class:`LogRecord` values.

Inputs are folders copied off the server (or a mounted disk image), single files,
or zip archives given on the command line (read in place, member by member); logs
compressed with gzip (``u_ex210303.log.gz``) are read as they are. A zip
found *inside* a folder is not opened: it is a file like any other, and the staging
check looks at it.

Each file is classified by its path and its first bytes: HttpProxy, ECP server and
OAB generator logs by their ``Logging/…`` folder or ``#Log-type:`` header, IIS logs
by ``W3SVC``/``u_ex`` or their ``#Software:`` header, Windows events by the ``.evtx``
magic or a JSON object on the first line. Every file is also a ``file`` record for
the web-shell and staging checks. A file that cannot be read, or that sits where
logs live but is none of these, is reported as a :class:`Problem`; nothing raises.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, cast

from vigile.exchange import KINDS, UNKNOWN_TIME, LogBlock, LogRecord
from vigile.exchange.blocks import parse_fields_blocks
from vigile.exchange.fields import BadLine, parse_fields_log
from vigile.exchange.winevents import json_clock_offset, read_evtx_events, read_json_events

#: Files whose content the web-shell rules scan (up to :data:`MAX_SCAN_BYTES`).
SCRIPT_SUFFIXES = {".aspx", ".ashx", ".asmx", ".asp", ".asa", ".cer", ".config", ".js", ".ps1"}
MAX_SCAN_BYTES = 2 * 1024 * 1024
#: Where a file is expected to be a log vigile reads.
LOG_SUFFIXES = {".log", ".evtx", ".json", ".jsonl", ".ndjson"}
EVTX_MAGIC = b"ElfFile\x00"
GZIP_MAGIC = b"\x1f\x8b"
#: Exceptions that mean "this file cannot be read", reported and skipped.
#: Log kinds read in blocks (:class:`LogBlock`): the large, line-per-request ones.
BLOCK_KINDS = ("iis", "httpproxy")
#: (zlib.error and LZMAError: a zip member whose compressed data is damaged.)
READ_ERRORS = (
    OSError,
    ValueError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    UnicodeError,
    zlib.error,
    lzma.LZMAError,
)


@dataclass
class Coverage:
    """What one log source held: files, rows, bad rows and the time span."""

    kind: str
    files: int = 0
    rows: int = 0
    bad_rows: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    first_error: str | None = None

    def add_many(self, stamps: list[datetime | None]) -> None:
        """:meth:`add` for every time of a block of rows, at once."""
        self.rows += len(stamps)
        known = {ts for ts in set(stamps) if ts is not None}  # rows of a second share it
        if not known:
            return
        oldest, newest = min(known), max(known)
        if self.oldest is None or oldest < self.oldest:
            self.oldest = oldest
        if self.newest is None or newest > self.newest:
            self.newest = newest

    def add(self, ts: datetime | None) -> None:
        self.rows += 1
        if ts is None:
            return
        if self.oldest is None or ts < self.oldest:
            self.oldest = ts
        if self.newest is None or ts > self.newest:
            self.newest = ts


@dataclass(frozen=True)
class Problem:
    """A file that could not be read or was not what its place promised."""

    origin: str
    message: str


@dataclass
class Collection:
    """Coverage per kind (and per HttpProxy folder or event channel), problems, notices."""

    coverage: dict[str, Coverage] = field(default_factory=lambda: {k: Coverage(k) for k in KINDS})
    detail: dict[str, Coverage] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def part(self, kind: str, name: str) -> Coverage:
        """Coverage of one part of a source: ``httpproxy/Ecp``, ``event/Security``."""
        key = f"{kind}/{name or '(none)'}"
        found = self.detail.get(key)
        if found is None:
            found = self.detail[key] = Coverage(key)
        return found


def httpproxy_folder(rel: PurePosixPath) -> str:
    """The protocol folder under ``HttpProxy`` (``Ecp``, ``Owa``…), or ``""``.

    >>> httpproxy_folder(PurePosixPath("V15/Logging/HttpProxy/Ecp/HttpProxy_1.LOG"))
    'Ecp'
    """
    parts = rel.parts
    for i, part in enumerate(parts[:-2]):
        if part.lower() == "httpproxy":
            return parts[i + 1]
    return ""


@dataclass(frozen=True)
class Entry:
    """One file to read: its display name, relative path, size, time and opener."""

    origin: str
    rel: PurePosixPath
    size: int
    mtime: datetime
    open: Callable[[], IO[bytes]]


def _entries(path: Path, col: Collection) -> Iterator[Entry]:
    problems = col.problems
    if path.is_dir():
        yield from _tree(path, col)
    elif path.is_file() and _is_zip(path):
        yield from _zip_members(path, problems)
    elif path.exists():
        entry = _file_entry(path, PurePosixPath(path.name), problems)
        if entry is not None:
            yield entry
    else:
        problems.append(Problem(str(path), "no such file or folder"))


def _tree(root: Path, col: Collection) -> Iterator[Entry]:
    def unreadable(e: OSError) -> None:
        col.problems.append(Problem(str(e.filename or root), f"unreadable folder: {e.strerror}"))

    # os.walk, not Path.rglob: it reports unreadable folders instead of raising, and does
    # not follow links (NTFS junctions on a mounted image loop back on themselves).
    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        links = [d for d in subfolders if os.path.islink(os.path.join(folder, d))]
        subfolders[:] = sorted(d for d in subfolders if d not in links)
        names += links
        for name in sorted(names):
            full = Path(folder, name)
            if full.is_symlink():
                col.notices.append(f"{full}: symbolic link not followed")
                continue
            # The folder's own name leads, so two servers' copies stay apart in findings.
            rel = PurePosixPath(root.resolve().name, full.relative_to(root).as_posix())
            entry = _file_entry(full, rel, col.problems)
            if entry is not None:
                yield entry


def _is_zip(path: Path) -> bool:
    """A zip by its end record, or by its first local header: a zip cut short (or damaged
    at the end) has no end record, and must be reported unreadable, not taken for a
    file that is no log."""
    try:
        with path.open("rb") as f:
            start = f.read(4)
    except OSError:
        return False
    return start == b"PK\x03\x04" or zipfile.is_zipfile(path)


def _zip_members(path: Path, problems: list[Problem]) -> Iterator[Entry]:
    try:
        archive = zipfile.ZipFile(path)
    except READ_ERRORS as e:
        size = path.stat().st_size
        problems.append(Problem(str(path), f"unreadable zip (cut or damaged; {size} bytes): {e}"))
        return
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        if info.is_dir():
            continue
        try:
            mtime = datetime(*info.date_time, tzinfo=UTC)
        except ValueError:
            mtime = UNKNOWN_TIME
        yield Entry(
            f"{path}!{info.filename}",
            PurePosixPath(info.filename),
            info.file_size,
            mtime,
            lambda info=info: archive.open(info),  # type: ignore[misc]
        )


def _file_entry(path: Path, rel: PurePosixPath, problems: list[Problem]) -> Entry | None:
    try:
        st = path.stat()
    except OSError as e:
        problems.append(Problem(str(path), f"unreadable: {e.strerror}"))
        return None
    if not stat.S_ISREG(st.st_mode):  # reading a device or pipe (/dev/zero) never ends
        problems.append(Problem(str(path), "not a regular file (a device, pipe or socket)"))
        return None
    mtime = datetime.fromtimestamp(st.st_mtime, UTC)
    return Entry(str(path), rel, st.st_size, mtime, lambda: path.open("rb"))


def classify(rel: PurePosixPath, head: bytes) -> str | None:
    """The log kind of a file from its path and first bytes, or ``None``.

    >>> classify(PurePosixPath("V15/Logging/HttpProxy/Ecp/HttpProxy_2021030304-1.LOG"), b"")
    'httpproxy'
    >>> classify(PurePosixPath("u_ex1.log"), b"#Software: Microsoft Internet Information Services")
    'iis'
    >>> classify(PurePosixPath("notes.txt"), b"hello") is None
    True
    """
    low = str(rel).lower()
    utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff")
    text = head[:4096].decode("utf-16" if utf16 else "utf-8", "replace").lstrip("\ufeff")
    if head.startswith(EVTX_MAGIC):
        return "event-evtx"
    if "#log-type: httpproxy" in text.lower() or "/httpproxy/" in f"/{low}":
        return "httpproxy" if rel.suffix.lower() == ".log" else None
    if "/ecp/server/" in f"/{low}":
        return "ecp" if rel.suffix.lower() == ".log" else None
    if "oabgeneratorlog" in low:
        return "oab" if rel.suffix.lower() == ".log" else None
    if "#Software: Microsoft Internet Information Services" in text or (
        ("w3svc" in low or rel.name.lower().startswith("u_ex")) and "#Fields:" in text
    ):
        return "iis"
    if rel.suffix.lower() in LOG_SUFFIXES | {".txt", ""} and looks_like_events(text):
        return "event-json"
    return None


#: Keys one of which every event export shape has (see :mod:`vigile.exchange.winevents`).
EVENT_KEYS = re.compile(r'"(EventID|EventId|Id|Channel|LogName|winlog|Event)"\s*:')


def looks_like_events(text: str) -> bool:
    """True for JSON lines of events or a JSON array of them (judged on the first bytes).

    >>> looks_like_events('{"EventID": 1, "Channel": "Security"}\\n')
    True
    >>> looks_like_events('{\\n  "name": "a package manifest"\\n}')
    False
    """
    stripped = text.lstrip()
    if stripped.startswith("["):
        return stripped[1:].lstrip()[:1] == "{" and EVENT_KEYS.search(stripped) is not None
    first = stripped.split("\n", 1)[0]
    try:
        event = json.loads(first)
    except ValueError:
        return False
    return isinstance(event, dict) and EVENT_KEYS.search(first) is not None


def _text_lines(opener: Callable[[], IO[bytes]]) -> Callable[[], IO[str]]:
    def open_text() -> IO[str]:
        raw = opener()
        head = raw.read(2)
        raw.close()
        encoding = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
        return io.TextIOWrapper(opener(), encoding=encoding, errors="replace", newline="")

    return open_text


def _fields_records(entry: Entry, kind: str, col: Collection) -> Iterator[LogRecord]:
    """ECP and OAB rows, one record each, rows before any ``#Fields:`` line kept (these
    logs may have none); IIS and HttpProxy rows go in blocks (:func:`_fields_blocks`)."""
    cov = col.coverage[kind]
    with _text_lines(entry.open)() as f:
        for item in parse_fields_log(f, headerless=True):
            if isinstance(item, BadLine):
                _bad(cov, entry.origin, item)
                continue
            cov.add(item.ts)
            yield LogRecord(kind, entry.origin, item.line, item.ts, item.fields, item.raw)


def _fields_blocks(entry: Entry, kind: str, col: Collection) -> Iterator[LogBlock]:
    """IIS and HttpProxy rows in blocks: most rows only feed per-client sums, and a
    block lets the checks skip them without a record each (see ``feed_block``)."""
    cov = col.coverage[kind]
    part = col.part(kind, httpproxy_folder(entry.rel)) if kind == "httpproxy" else None
    if part is not None:
        part.files += 1
    with _text_lines(entry.open)() as f:
        for item in parse_fields_blocks(f):
            if isinstance(item, BadLine):
                _bad(cov, entry.origin, item)
                continue
            cov.add_many(item.ts)
            if part is not None:
                part.add_many(item.ts)
            yield LogBlock(kind, entry.origin, item)


def _bad(cov: Coverage, origin: str, bad: BadLine) -> None:
    cov.bad_rows += 1
    if cov.first_error is None:
        cov.first_error = f"{origin}:{bad.line}: {bad.reason}"


def _event_records(entry: Entry, kind: str, col: Collection) -> Iterator[LogRecord]:
    if kind == "event-evtx":
        with entry.open() as f:
            yield from _events_to_records(entry, read_evtx_events(f), col)
        return
    offset = json_clock_offset(_text_lines(entry.open))
    if offset:
        col.notices.append(
            f"{entry.origin}: TimeCreated is {offset.total_seconds() / 3600:+g} h off "
            "Sysmon's UtcTime; times were corrected to UTC"
        )
    yield from _events_to_records(entry, read_json_events(_text_lines(entry.open), offset), col)


def _events_to_records(
    entry: Entry,
    events: Iterator[tuple[int, datetime | None, dict[str, str]] | BadLine],
    col: Collection,
) -> Iterator[LogRecord]:
    cov = col.coverage["event"]
    for item in events:
        if isinstance(item, BadLine):
            _bad(cov, entry.origin, item)
            continue
        number, ts, fields = item
        cov.add(ts)
        col.part("event", fields.get("Channel", "")).add(ts)
        yield LogRecord("event", entry.origin, number, ts, fields, fields.get("Message", ""))


def file_record(entry: Entry, col: Collection) -> LogRecord:
    """The ``file`` record of an entry; script-like files carry their content."""
    content = None
    if entry.rel.suffix.lower() in SCRIPT_SUFFIXES and entry.size <= MAX_SCAN_BYTES:
        try:
            with entry.open() as f:
                content = f.read(MAX_SCAN_BYTES)
        except READ_ERRORS as e:  # the path alone can still tell something
            col.problems.append(Problem(entry.origin, f"content unreadable: {e}"))
    fields = {"path": str(entry.rel), "size": str(entry.size)}
    return LogRecord("file", entry.origin, 0, entry.mtime, fields, str(entry.rel), content)


def _may_be_log(rel: PurePosixPath) -> bool:
    """Worth opening to sniff: a log-like name or a place where logs live."""
    low = str(rel).lower()
    return rel.suffix.lower() in LOG_SUFFIXES | {".txt", ""} or "w3svc" in low or "logging" in low


def _gunzipped(entry: Entry) -> Entry:
    """The entry itself, or its decompressed content when it is gzip (``x.log.gz``)."""
    if entry.rel.suffix.lower() != ".gz":
        return entry
    with entry.open() as f:
        if f.read(2) != GZIP_MAGIC:
            return entry

    def open_plain() -> IO[bytes]:
        return cast(IO[bytes], gzip.open(entry.open()))

    return Entry(entry.origin, entry.rel.with_suffix(""), entry.size, entry.mtime, open_plain)


def _records_of(entry: Entry, col: Collection) -> Iterator[LogRecord | LogBlock]:
    col.coverage["file"].files += 1
    col.coverage["file"].add(entry.mtime)
    yield file_record(entry, col)
    entry = _gunzipped(entry)
    if not _may_be_log(entry.rel):
        return
    with entry.open() as f:
        head = f.read(4096)
    kind = classify(entry.rel, head)
    if kind is None:
        if entry.rel.suffix.lower() in LOG_SUFFIXES:
            col.problems.append(Problem(entry.origin, "not a log format vigile reads; skipped"))
        return
    base = "event" if kind.startswith("event") else kind
    col.coverage[base].files += 1
    if base == "event":
        yield from _event_records(entry, kind, col)
    elif base in BLOCK_KINDS:
        yield from _fields_blocks(entry, kind, col)
    else:
        yield from _fields_records(entry, kind, col)


def walk(paths: list[Path], col: Collection) -> Iterator[LogRecord]:
    """Every record of every input, files in path order; problems go to ``col``."""
    for item in walk_blocks(paths, col):
        if isinstance(item, LogBlock):
            yield from item.records()
        else:
            yield item


def walk_blocks(paths: list[Path], col: Collection) -> Iterator[LogRecord | LogBlock]:
    """:func:`walk` with the rows of :data:`BLOCK_KINDS` logs left in blocks."""
    for path in paths:
        for entry in _entries(path, col):
            try:
                yield from _records_of(entry, col)
            except READ_ERRORS as e:
                col.problems.append(Problem(entry.origin, f"unreadable: {e}"))
