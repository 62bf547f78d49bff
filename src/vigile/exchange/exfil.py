"""Exfiltration hint: clients that took far more bytes than the server's baseline.

HAFNIUM downloaded whole mailboxes and offline address books; the first sign was
an unusually large outbound transfer. Per client IP and day, response bytes are
summed from IIS ``sc-bytes`` and HttpProxy ``ResponseBytes``; the baseline is the
median of those daily totals. A client-day at least :data:`RATIO` times the
baseline and above :data:`MIN_BYTES` is a hint (medium at most): mail clients that
synchronise a large mailbox look the same, so it asks for a look, not an alarm.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import Finding
from vigile.exchange import LogBlock, LogRecord

RATIO = 20.0
MIN_BYTES = 100 * 1024 * 1024
#: Rows of blocks gathered before Arrow sums them per client-day (memory stays bounded).
BATCH_ROWS = 100_000
#: Sizes Arrow sums have at most this many ASCII digits (under 1 TB a response), so a
#: batch's int64 sum cannot overflow; others (rare) are summed in Python.
ARROW_DIGITS = 12
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class ResponseBytesCheck:
    """Client-days whose response bytes dwarf the server's median client-day."""

    name: ClassVar[str] = "exchange-exfil-hint"
    kinds: ClassVar[tuple[str, ...]] = ("iis", "httpproxy")
    summary: ClassVar[str] = "Clients that downloaded far more than the baseline (per day)"
    source: ClassVar[str] = "Microsoft HAFNIUM blog (mailbox export); CISA AA21-062A"

    def __init__(self) -> None:
        self.totals: dict[tuple[str, date], int] = defaultdict(int)
        self.span: dict[tuple[str, date], tuple[datetime, datetime]] = {}
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def feed(self, record: LogRecord) -> None:
        if record.kind == "iis":
            client, raw = record.get("c-ip"), record.get("sc-bytes")
        else:
            client, raw = record.iget("ClientIpAddress"), record.iget("ResponseBytes")
        self._add_rows([client], [raw], [record.ts])

    def feed_block(self, block: LogBlock) -> None:
        """:meth:`feed` for every row: the three columns go to Arrow, summed per batch."""
        rows = block.rows
        if block.kind == "iis":
            clients, sizes = rows.column("c-ip"), rows.column("sc-bytes")
        else:
            clients, sizes = rows.icolumn("ClientIpAddress"), rows.icolumn("ResponseBytes")
        distinct = list(dict.fromkeys(rows.ts))  # rows of one second share their time
        code = {ts: i for i, ts in enumerate(distinct)}
        codes = pa.array(list(map(code.__getitem__, rows.ts)), pa.int32())
        micros = [None if ts is None else (ts - EPOCH) // MICROSECOND for ts in distinct]
        days = [None if ts is None else ts.date().toordinal() for ts in distinct]
        self.pending.append(
            pa.record_batch(
                {
                    "client": pa.array(clients, pa.string()),
                    "size": pa.array(sizes, pa.string()),
                    "micros": pa.array(micros, pa.int64()).take(codes),
                    "day": pa.array(days, pa.int32()).take(codes),
                }
            )
        )
        self.pending_rows += len(clients)
        if self.pending_rows >= BATCH_ROWS:
            self._sum_pending()

    def _sum_pending(self) -> None:
        """The pending rows into the per client-day sums and spans.

        Rows are grouped, not filtered (a filter copies every string): ``keep`` is a
        group key and the groups of rows :meth:`_add_rows` would skip are dropped.
        """
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending)
        self.pending, self.pending_rows = [], 0
        size = table["size"]
        valid = pc.and_(pc.not_equal(table["client"], ""), table["micros"].is_valid())
        simple = pc.and_(
            pc.ascii_is_decimal(size), pc.less_equal(pc.binary_length(size), ARROW_DIGITS)
        )
        odd = pc.and_(valid, pc.and_(pc.invert(simple), pc.not_equal(size, "")))
        if pc.any(odd).as_py():  # not ASCII digits, or 13 and more: Python reads them
            rest = table.filter(odd)
            stamps = [EPOCH + m * MICROSECOND for m in rest["micros"].to_pylist()]
            self._add_rows(rest["client"].to_pylist(), rest["size"].to_pylist(), stamps)
        sums = (
            table.set_column(1, "size", pc.cast(pc.if_else(simple, size, "0"), pa.int64()))
            .append_column("keep", pc.and_(valid, simple))
            .group_by(["keep", "client", "day"], use_threads=False)
            .aggregate([("size", "sum"), ("micros", "min"), ("micros", "max")])
        )
        columns = ("keep", "client", "day", "size_sum", "micros_min", "micros_max")
        for keep, client, day, total, low, high in zip(
            *(sums[c].to_pylist() for c in columns), strict=True
        ):
            if keep:
                self._add_sum(client, date.fromordinal(day), total, EPOCH + low * MICROSECOND,
                              EPOCH + high * MICROSECOND)  # fmt: skip

    def _add_sum(self, client: str, day: date, total: int, first: datetime, last: datetime) -> None:
        key = (client, day)
        self.totals[key] += total
        span = self.span.get(key)
        if span is None:
            self.span[key] = (first, last)
        elif not span[0] <= first <= last <= span[1]:
            self.span[key] = (min(span[0], first), max(span[1], last))

    def _add_rows(
        self, clients: list[str], sizes: list[str], stamps: list[datetime | None]
    ) -> None:
        for client, raw, ts in zip(clients, sizes, stamps, strict=True):
            # isdecimal, not isdigit: int() reads exactly these (not "²").
            if client and raw.isdecimal() and ts is not None:
                self._add_sum(client, ts.date(), int(raw), ts, ts)

    def finish(self) -> list[Finding]:
        self._sum_pending()
        if len(self.totals) < 3:
            return []
        baseline = max(1.0, statistics.median(self.totals.values()))
        out = []
        for (client, day), total in sorted(self.totals.items()):
            ratio = total / baseline
            if ratio < RATIO or total < MIN_BYTES:
                continue
            first, last = self.span[(client, day)]
            out.append(
                Finding(
                    detector=self.name,
                    src=client,
                    dst=None,
                    fqdn=None,
                    score=min(0.7, 0.4 + 0.1 * math.log10(ratio / RATIO + 1) * 3),
                    window_start=first,
                    window_end=last,
                    explanation=f"{client} received {total / 1e6:,.1f} MB on {day}, "
                    f"{ratio:,.0f}x the median client-day ({baseline / 1e6:,.2f} MB): "
                    "a mailbox or address book export looks like this.",
                    evidence={"bytes": total, "baseline_bytes": baseline, "ratio": ratio},
                )
            )
        return out
