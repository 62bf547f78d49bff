"""Inspect copies of an Exchange server's logs and files for ProxyLogon/Hafnium traces.

The flow (:mod:`vigile.exchange.inspect`) is: walk the inputs and read every file
into :class:`LogRecord` values (:mod:`vigile.exchange.collect`), feed each record to
the checks that want its kind, then collect their findings, rank them and build a
timeline. Findings are ordinary :class:`vigile.detect.Finding` records so the CLI and
the console show them beside the network detections.

A check is a small class with one job. Built-in checks register exactly as a
third-party one would, through the entry point group ``vigile.exchange_checks``::

    [project.entry-points."vigile.exchange_checks"]
    httpproxy = "vigile.exchange.httpproxy:ProxyLogonSsrfCheck"

Contract of a check:

* ``kinds`` names the record kinds it reads (see :data:`KINDS`); ``feed`` is called
  once per such record, in file order, files in path order;
* a check may also define ``feed_block(block)``: it then gets the rows of IIS and
  HttpProxy logs as :class:`LogBlock` values (up to a few thousand rows of one file
  under one ``#Fields:`` line, in file order) instead of one ``feed`` call per row,
  and must reach exactly the findings that feeding ``block.records()`` one by one
  would (``tests/test_exchange_blocks.py`` holds the built-in checks to that). A
  check without it gets every row through ``feed``;
* ``finish`` is called once, last, and returns the findings; the same records give
  the same findings (no clock, no randomness);
* ``source`` cites the public rule or guidance the check follows (docs/detections.md);
* every number or field used goes into ``Finding.evidence``, with the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

from vigile.detect import Finding
from vigile.exchange.blocks import FieldsBlock

ENTRY_POINT_GROUP = "vigile.exchange_checks"
#: Stands in for the time of a record that has none (shown as "time unknown").
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)

#: Record kinds, each a log source with its own coverage line.
KINDS = {
    "httpproxy": "Exchange HttpProxy logs (Logging/HttpProxy/**)",
    "ecp": "Exchange ECP server logs (Logging/ECP/Server)",
    "oab": "Exchange OAB generator logs (Logging/OABGeneratorLog)",
    "iis": "IIS W3C logs (W3SVC*/u_ex*.log)",
    "event": "Windows events (JSON lines, .evtx)",
    "file": "Files of the Exchange install and inetpub",
}


@dataclass(frozen=True)
class LogRecord:
    """One line, event or file found in the inputs, with where it came from."""

    kind: str
    origin: str
    line: int
    ts: datetime | None
    fields: Mapping[str, str]
    raw: str = ""
    content: bytes | None = field(default=None, repr=False)

    def where(self) -> str:
        """``file:line`` (or just the file for a file record)."""
        return f"{self.origin}:{self.line}" if self.line else self.origin

    def get(self, name: str) -> str:
        """A field's value, ``""`` when absent."""
        return self.fields.get(name) or ""

    def iget(self, name: str) -> str:
        """A field's value matched without case (as PowerShell's Import-Csv does).

        >>> LogRecord("iis", "f", 1, None, {"ClientIPAddress": "1.2.3.4"}).iget("clientipaddress")
        '1.2.3.4'
        """
        value = self.fields.get(name)
        if value is None:
            value = self._lower_fields.get(name.lower())
        return value or ""

    @cached_property
    def _lower_fields(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.fields.items()}


@dataclass(frozen=True, slots=True)
class LogBlock:
    """Rows of one IIS or HttpProxy log file under one ``#Fields:`` line."""

    kind: str
    origin: str
    rows: FieldsBlock

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, i: int) -> LogRecord:
        """Row ``i`` as the :class:`LogRecord` ``feed`` would get."""
        rows = self.rows
        return LogRecord(
            self.kind, self.origin, rows.lines[i], rows.ts[i], rows.fields(i), rows.raws[i]
        )

    def records(self) -> Iterator[LogRecord]:
        """Every row as a :class:`LogRecord`, in file order."""
        return (self.record(i) for i in range(len(self.rows)))


class ExchangeCheck(Protocol):
    """One inspection. Implementations set the class attributes below."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    summary: ClassVar[str]
    source: ClassVar[str]

    def feed(self, record: LogRecord) -> None: ...

    def finish(self) -> list[Finding]: ...


def registered_checks() -> list[type[ExchangeCheck]]:
    """Every check installed under the entry point group, ordered by name."""
    found = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(found, key=lambda c: c.name)


def make_finding(
    check: str,
    record: LogRecord,
    score: float,
    explanation: str,
    *,
    src: str | None = None,
    dst: str | None = None,
    subject: str | None = None,
    **evidence: Any,
) -> Finding:
    """A finding about one record, its time and place in the evidence.

    ``subject`` goes into ``fqdn``: the Exchange host name, or a file's path.
    """
    if record.ts is None:
        evidence["time_unknown"] = True
    if record.kind == "event":  # as written, before any clock correction
        evidence["time_recorded"] = record.get("TimeCreated")
    ts = record.ts or UNKNOWN_TIME
    return Finding(
        detector=check,
        src=src or None,
        dst=dst or None,
        fqdn=subject or None,
        score=score,
        window_start=ts,
        window_end=ts,
        explanation=explanation,
        evidence={"where": record.where(), "kind": record.kind, **evidence},
    )
