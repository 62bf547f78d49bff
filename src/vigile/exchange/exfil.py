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
from datetime import date, datetime
from typing import ClassVar

from vigile.detect import Finding
from vigile.exchange import LogBlock, LogRecord

RATIO = 20.0
MIN_BYTES = 100 * 1024 * 1024


class ResponseBytesCheck:
    """Client-days whose response bytes dwarf the server's median client-day."""

    name: ClassVar[str] = "exchange-exfil-hint"
    kinds: ClassVar[tuple[str, ...]] = ("iis", "httpproxy")
    summary: ClassVar[str] = "Clients that downloaded far more than the baseline (per day)"
    source: ClassVar[str] = "Microsoft HAFNIUM blog (mailbox export); CISA AA21-062A"

    def __init__(self) -> None:
        self.totals: dict[tuple[str, date], int] = defaultdict(int)
        self.span: dict[tuple[str, date], tuple[datetime, datetime]] = {}

    def feed(self, record: LogRecord) -> None:
        if record.kind == "iis":
            client, raw = record.get("c-ip"), record.get("sc-bytes")
        else:
            client, raw = record.iget("ClientIpAddress"), record.iget("ResponseBytes")
        self._add_rows([client], [raw], [record.ts])

    def feed_block(self, block: LogBlock) -> None:
        """:meth:`feed` for every row, reading three columns instead of records."""
        rows = block.rows
        if block.kind == "iis":
            clients, sizes = rows.column("c-ip"), rows.column("sc-bytes")
        else:
            clients, sizes = rows.icolumn("ClientIpAddress"), rows.icolumn("ResponseBytes")
        self._add_rows(clients, sizes, rows.ts)

    def _add_rows(
        self, clients: list[str], sizes: list[str], stamps: list[datetime | None]
    ) -> None:
        totals, spans = self.totals, self.span
        last_ts, day = None, None
        for client, raw, ts in zip(clients, sizes, stamps, strict=True):
            if not client or not raw.isdigit() or ts is None:
                continue
            if ts is not last_ts:  # rows of one second share their time object
                last_ts, day = ts, ts.date()
            key = (client, day)
            totals[key] += int(raw)
            span = spans.get(key)
            if span is None:
                spans[key] = (ts, ts)
            elif not span[0] <= ts <= span[1]:
                spans[key] = (min(span[0], ts), max(span[1], ts))

    def finish(self) -> list[Finding]:
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
