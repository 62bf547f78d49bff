"""The store contract: what every storage engine must do, written where it is declared.

Detectors and commands talk to a :class:`Store`, never to an engine directly, so the
same detections can run on another engine (Apache Spark) that implements this contract;
the embedded DuckDB file is the only engine implemented.
Queries are expressed with the small, engine-neutral vocabulary below
(:class:`Window`, :class:`Pred`, :class:`Agg`); each engine translates it.

Contract, per method:

* ``source_writer(record)`` opens a transaction for one input. Rows appended through
  it become visible only when the block exits normally; an exception, a Ctrl-C or a
  killed process leaves no row of that input behind (all or nothing).
* ``source_hashes(size_bytes)`` gives the content hashes of the committed inputs of
  exactly that size (usually none or one); the ingest pipeline looks its file's hash
  up there so re-ingesting a file adds nothing. Opening a store written with the
  older ``sha256`` column renames it to ``content_hash`` and prefixes its values with
  ``sha256:``, so those inputs are still recognised.
* ``scan`` and ``group`` are read-only and may run while no writer is open; results
  are Arrow tables/batches in the schema of :mod:`vigile.schema`.
* ``scan(..., codes={column: values})`` and ``scan_batches`` alike return each named
  string column dictionary-encoded over ``values`` (its distinct values, e.g. from
  ``group``): an Arrow ``dictionary<int32, string>`` column whose every chunk shares
  ``values`` as its dictionary, so a caller can group on the integer indices instead
  of hashing strings; a value missing from ``values``, or null, comes back null. Row
  order is the engine's (as for any scan without ``order_by``).
* ``group`` returns one row per distinct key combination; ``list`` aggregates keep
  the rows' order by ``ts`` so interval statistics can be computed without sorting;
  ``sum`` of an integer column is a 64-bit integer, of a float column a double.
* ``replace_findings(detectors, batch, scope)`` stores the findings one run of the
  named detectors produced over ``scope`` (a :class:`FindingScope`: what the run
  examined and the window it covered), in one transaction of its own; the
  :class:`StateWriter` method of the same name does the same inside the writer's
  transaction, so a command that stores several runs (an inspection, one per check
  family) and then re-applies the console's suppressions commits all or nothing.
  It removes exactly

  - the stored findings of those detectors with the same ``scope.source`` whose
    scope window lies inside ``scope.window`` (the run looked again at everything
    they were computed from, so its verdict supersedes them) or, when the run's
    findings are traces (``scope.verdicts`` false: an inspection), whose own window
    (``window_start`` to ``window_end``) lies inside it (the run read again what
    they were found in);
  - when ``scope.verdicts`` (a hunt), the stored findings of those detectors with
    the same source and the same subject (detector, ``src``, ``dst``, ``fqdn``) as a
    finding in ``batch`` whose scope window overlaps ``scope.window`` and does not end
    after it (the previous hour's hunt of a sliding 24 h window: the new verdict on
    that subject saw most of the same evidence and newer, so it supersedes the old
    one instead of piling up beside it); and
  - any stored finding with the id of a finding in ``batch`` (one row per id);

  and keeps every other finding: those of other detectors, of another source (a
  second Exchange server), of windows the run did not overlap (yesterday's hunt), of
  subjects the run did not report again over a window it did not wholly cover (it
  did not see all of their evidence), and of windows ending after the run's (a
  re-hunt of an old window leaves today's verdict). The batch's ``scope``,
  ``scope_start`` and ``scope_end`` columns are set from ``scope``. Rerunning the
  same run over the same data leaves the same rows (ids are stable), so it is
  idempotent. Rows stored before the scope columns existed have no scope at all
  (null source, open window): the next run of their detector replaces them, as every
  run did then. :meth:`FindingScope.replaces` and :meth:`FindingScope.supersedes`
  are the rule; an engine selects candidates however it likes but decides with them.
* ``time_series`` is ``group`` over fixed time buckets: one row per bucket (and key)
  that has rows, column ``bucket`` holding the bucket's start, buckets aligned to
  multiples of ``every`` since the Unix epoch, ordered by ``bucket``.
* ``state_writer()`` opens one transaction over the console's own tables
  (:data:`vigile.schema.STATE_TABLES`), ``findings.suppressed_by`` and the findings
  themselves (``replace_findings``): every change made through it is committed
  together when the block exits normally, or not at all. Reads through the store
  inside the block see the block's own changes.
  The process holding the store read-write (``vigile serve`` while it runs) is the
  only writer, as DuckDB allows one writer per file.
* Errors: :class:`vigile.errors.StoreError` for an unopenable or locked store (the
  user can retry once the other writer is gone); any other exception is a bug.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import pyarrow as pa

PredOp = Literal[
    "=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null", "hash mod"
]
AggOp = Literal["count", "sum", "min", "max", "count_distinct", "list", "any"]


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)``; ``None`` leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class FindingScope:
    """What one run of detectors examined, as :meth:`Store.replace_findings` needs it.

    ``source`` is ``None`` for a hunt over the stored traffic, or names what else was
    examined (``exchange:<server>``); ``window`` is the time the run covered, a side
    left ``None`` covering all time on that side. ``verdicts`` says what the run's
    findings are: ``True`` (a hunt) when each is a verdict on its subject over the
    whole window, so a later run's verdict on the same subject supersedes an earlier
    overlapping one; ``False`` (an inspection) when each is a trace found at its own
    time, evidence in its own right until a run looks again at all it came from.

    A run replaces what lies inside its window, and nothing of another source:

    >>> day = FindingScope(None, Window(datetime(2026, 3, 2), datetime(2026, 3, 3)))
    >>> day.replaces(None, datetime(2026, 3, 2, 12), datetime(2026, 3, 3))
    True
    >>> day.replaces(None, datetime(2026, 3, 1), datetime(2026, 3, 2))
    False
    >>> day.replaces("exchange:EX01", None, None), day.replaces(None, None, None)
    (False, True)

    An inspection replaces the traces found within what its copy covers again, whatever
    span the earlier copy covered:

    >>> copy = FindingScope("exchange:EX01", day.window, verdicts=False)
    >>> march, noon = datetime(2026, 3, 1), datetime(2026, 3, 2, 12)
    >>> copy.replaces("exchange:EX01", march, day.window.end, Window(noon, noon))
    True
    >>> copy.replaces("exchange:EX01", march, day.window.end, Window(march, march))
    False

    The hour-later hunt of a sliding 24 h window supersedes the previous hour's verdict
    on a subject it reports again; yesterday's window, and a window ending later than
    the run's (today's, when an old window is hunted again), stay:

    >>> later = FindingScope(None, Window(datetime(2026, 3, 2, 1), datetime(2026, 3, 3, 1)))
    >>> later.supersedes(None, datetime(2026, 3, 2), datetime(2026, 3, 3))
    True
    >>> later.supersedes(None, datetime(2026, 3, 1), datetime(2026, 3, 2))
    False
    >>> later.supersedes(None, datetime(2026, 3, 2, 2), datetime(2026, 3, 3, 2))
    False
    >>> FindingScope("exchange:EX01", later.window, verdicts=False).supersedes(
    ...     "exchange:EX01", datetime(2026, 3, 2), datetime(2026, 3, 3))
    False
    """

    source: str | None = None
    window: Window = Window()
    verdicts: bool = True

    def replaces(
        self,
        source: str | None,
        start: datetime | None,
        end: datetime | None,
        found: Window = Window(),
    ) -> bool:
        """Whether a run over this scope replaces a stored finding of one of its detectors
        whose run had ``source`` and the window ``[start, end)``, the finding itself
        spanning ``found`` (its ``window_start`` to ``window_end``).

        Yes when the sources match and the run looked again at all the finding came
        from: for verdicts, that run's window lies inside this one; for traces, the
        finding's own time does (an inspection of a newer copy replaces what its logs
        cover again, not the traces of logs that have rotated away). And yes for a
        finding stored with no scope at all (before scopes existed), which every run of
        its detector replaced, as it still does.
        """
        if source is None and start is None and end is None:
            return True
        w = self.window
        if not self.verdicts:  # the finding's own window is closed: its last time counts
            start, end = found.start, found.end
            before = w.end is None or (end is not None and end < w.end)
        else:
            before = w.end is None or (end is not None and end <= w.end)
        after = w.start is None or (start is not None and start >= w.start)
        return source == self.source and after and before

    def supersedes(self, source: str | None, start: datetime | None, end: datetime | None) -> bool:
        """Whether this run's finding on a subject supersedes a stored finding of the same
        detector and subject whose run had ``source`` and the window ``[start, end)``.

        Yes when this run's findings are verdicts, the sources match, and that window
        overlaps this one without ending after it. The caller asks only about subjects
        the run reported again: the others stay, since it did not see all their evidence.
        """
        w = self.window
        overlaps = (start is None or w.end is None or start < w.end) and (
            end is None or w.start is None or end > w.start
        )
        not_after = w.end is None or (end is not None and end <= w.end)
        return self.verdicts and source == self.source and overlaps and not_after


@dataclass(frozen=True)
class Pred:
    """A filter on one column, e.g. ``Pred("proto", "=", "tcp")``.

    ``in`` and ``not in`` take any sequence or an Arrow array; engines must handle
    sets of hundreds of thousands of values (e.g. connection uids) without spelling
    them out one parameter each.

    ``hash mod`` takes ``(k, i)`` and keeps the rows whose column value falls in
    partition ``i`` of ``k`` under the engine's own hash: the ``k`` partitions are
    disjoint, cover every row, and put equal values together, so a caller can process
    a large table in ``k`` bounded-memory passes (e.g. all pairs of one source at once).
    """

    column: str
    op: PredOp
    value: Any = None


@dataclass(frozen=True)
class Agg:
    """An aggregate over a group: ``Agg("sum", "orig_ip_bytes", "bytes_out")``.

    ``min``/``max`` of a boolean column are "all true"/"any true" (nulls ignored; null
    when every value is null): ``Agg("max", "resp_payload", "answered")``.
    """

    op: AggOp
    column: str | None
    alias: str


@dataclass(frozen=True)
class SourceRecord:
    """What is known about an input before its rows are read."""

    source_id: int
    path: str
    content_hash: str
    size_bytes: int
    format: str


@dataclass
class SourceSummary:
    """What ingesting one input produced, stored in ``sources`` at commit."""

    log_type: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    bad_rows: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    first_error: str | None = None
    notices: list[str] = field(default_factory=list)


class SourceWriter(Protocol):
    """Appends one input's rows inside its transaction (see the module contract)."""

    def append(self, table: str, batch: pa.RecordBatch) -> None:
        """Add rows to a traffic table; ``batch`` must have that table's schema."""

    def reject(self, position: int, unit: str, reason: str, raw: str | None) -> None:
        """Keep a record that could not be read, with where it was and why."""

    def finish(self, summary: SourceSummary) -> None:
        """Record the input in ``sources``; called once, last, before commit."""


class StateWriter(Protocol):
    """Changes the console's own tables inside one transaction (see the module contract)."""

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add rows to a state table; missing nullable columns are null."""

    def update(self, table: str, where: Sequence[Pred], values: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows of a state table matching every ``where``; count."""

    def delete(self, table: str, where: Sequence[Pred]) -> int:
        """Remove the rows of a state table matching every ``where`` (at least one)."""

    def set_suppressed(self, assignments: Mapping[str, str | None]) -> None:
        """Set ``findings.suppressed_by`` by finding id; ids not named are left alone."""

    def replace_findings(
        self, detectors: Sequence[str], batch: pa.Table, scope: FindingScope
    ) -> None:
        """:meth:`Store.replace_findings` inside this writer's transaction."""


class Store(Protocol):
    """A place that holds the normalised tables and the findings."""

    location: str

    def source_hashes(self, size_bytes: int) -> set[str]: ...

    def source_writer(self, record: SourceRecord) -> AbstractContextManager[SourceWriter]: ...

    def scan(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        window: Window | None = None,
        where: Sequence[Pred] = (),
        order_by: Sequence[str] = (),
        limit: int | None = None,
        codes: Mapping[str, pa.Array] | None = None,
    ) -> pa.Table: ...

    def scan_batches(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        window: Window | None = None,
        where: Sequence[Pred] = (),
        codes: Mapping[str, pa.Array] | None = None,
    ) -> Iterator[pa.RecordBatch]: ...

    def group(
        self,
        table: str,
        keys: Sequence[str],
        aggs: Sequence[Agg],
        window: Window | None = None,
        where: Sequence[Pred] = (),
        order_by: Sequence[str] = (),
        descending: bool = False,
        limit: int | None = None,
    ) -> pa.Table: ...

    def time_series(
        self,
        table: str,
        every: timedelta,
        aggs: Sequence[Agg],
        window: Window | None = None,
        where: Sequence[Pred] = (),
        keys: Sequence[str] = (),
    ) -> pa.Table: ...

    def time_bounds(self, table: str) -> tuple[datetime | None, datetime | None]: ...

    def count(self, table: str, window: Window | None = None) -> int: ...

    def replace_findings(
        self, detectors: Sequence[str], batch: pa.Table, scope: FindingScope
    ) -> None: ...

    def state_writer(self) -> AbstractContextManager[StateWriter]: ...

    def close(self) -> None: ...
