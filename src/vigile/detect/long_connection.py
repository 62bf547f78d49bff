"""Long connections: pairs that stay connected for hours (a shell, a tunnel, an implant).

Follows RITA v5 (``analysis/analysis.go``, ``calculateBucketedScore``; thresholds
from its default ``config.hjson``): the total duration of an IP pair is the sum of
its closed connections' durations in the window plus, for each connection still
open, its latest duration (Zeek ``open_conn.log`` snapshots; a session that later
closed counts once, closed). Pairs below one hour are not reported; the score
rises linearly through RITA's steps: 1 h -> 0.2, 4 h -> 0.4, 8 h -> 0.6, 12 h and
more -> 0.8.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import Finding, HuntContext
from vigile.detect.pairs import ScoringWindow, scoring_window
from vigile.store import Agg, Pred, Window

#: (duration in seconds, score) steps, RITA's long_connection_score_thresholds.
STEPS = ((3600.0, 0.2), (14400.0, 0.4), (28800.0, 0.6), (43200.0, 0.8))


def bucketed_score(seconds: float) -> float:
    """RITA's interpolated category score for a total duration.

    >>> bucketed_score(3599), bucketed_score(3600), bucketed_score(9000), bucketed_score(90000)
    (0.0, 0.2, 0.3, 0.8)
    """
    if seconds < STEPS[0][0]:
        return 0.0
    xs, ys = zip(*STEPS, strict=True)
    return round(float(np.interp(seconds, xs, ys)), 6)


class LongConnectionDetector:
    """Total connected time per IP pair, open sessions included."""

    name: ClassVar[str] = "long_connection"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = "Pairs connected for hours in total, still-open sessions included."

    def run(self, ctx: HuntContext) -> list[Finding]:
        win = scoring_window(ctx)
        if win is None:
            return []
        totals: dict[tuple[str, str], dict[str, float]] = defaultdict(
            lambda: {"closed": 0.0, "open": 0.0, "connections": 0, "open_connections": 0}
        )
        closed = ctx.store.group(
            "conn",
            ["src", "dst"],
            [Agg("sum", "duration", "d"), Agg("count", None, "n")],
            window=win.rows,
            where=[Pred("open", "=", False)],
        )
        opened = _open_sessions(ctx, win.rows.end)
        long_enough = pc.greater_equal(closed.column("d").fill_null(0.0), STEPS[0][0])
        if opened:
            srcs = pa.array([s for s, _ in opened])
            with_open = pc.is_in(closed.column("src"), value_set=srcs)
            long_enough = pc.or_(long_enough, with_open)
        for r in closed.filter(long_enough).to_pylist():
            t = totals[(r["src"], r["dst"])]
            t["closed"], t["connections"] = r["d"] or 0.0, r["n"]
        for (src, dst), (seconds, n) in opened.items():
            t = totals[(src, dst)]
            t["open"] += seconds
            t["open_connections"] += n
        return [
            _finding(ctx, win, src, dst, t)
            for (src, dst), t in totals.items()
            if t["closed"] + t["open"] >= STEPS[0][0]
        ]


def _open_sessions(
    ctx: HuntContext, end: datetime | None
) -> dict[tuple[str, str], tuple[float, int]]:
    """Latest duration of each still-open connection (one per uid), per pair."""
    snaps = ctx.store.group(
        "conn",
        ["src", "dst", "uid"],
        [Agg("max", "duration", "d")],
        window=Window(None, end),
        where=[Pred("open", "=", True), Pred("uid", "is not null")],
    )
    if not snaps.num_rows:
        return {}
    ended = ctx.store.group(
        "conn",
        ["uid"],
        [Agg("count", None, "n")],
        window=Window(None, end),
        where=[Pred("open", "=", False), Pred("uid", "in", snaps.column("uid").combine_chunks())],
    )
    done = set(ended.column("uid").to_pylist())
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for r in snaps.to_pylist():
        if r["uid"] not in done:
            seconds, n = out.get((r["src"], r["dst"]), (0.0, 0))
            out[(r["src"], r["dst"])] = (seconds + (r["d"] or 0.0), n + 1)
    return out


def _finding(
    ctx: HuntContext, win: ScoringWindow, src: str, dst: str, t: dict[str, float]
) -> Finding:
    total = t["closed"] + t["open"]
    score = bucketed_score(total)
    ev = {
        "total_duration_s": round(total, 3),
        "closed_duration_s": round(t["closed"], 3),
        "open_duration_s": round(t["open"], 3),
        "connections": int(t["connections"]),
        "open_connections": int(t["open_connections"]),
        "rita_steps_s": [s for s, _ in STEPS],
        "rita_long_conn_score": score,
        **win.evidence(),
    }
    hours = total / 3600
    still = f", {int(t['open_connections'])} still open" if t["open_connections"] else ""
    text = (
        f"{src} → {dst} was connected for {hours:,.1f} h in total ({total:,.0f} s over "
        f"{int(t['connections'])} closed connections{still}); RITA's steps score that {score:.2f}."
    )
    return Finding(
        detector="long_connection",
        src=src,
        dst=dst,
        fqdn=None,
        score=score,
        window_start=win.rows.start or ctx.window.start,  # type: ignore[arg-type]
        window_end=win.rows.end or ctx.window.end,  # type: ignore[arg-type]
        explanation=text,
        evidence=ev,
    )
