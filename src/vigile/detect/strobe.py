"""Strobes: a pair with at least one connection per second on average over a day.

RITA v5 (``analysis/analysis.go``) marks a pair with 86,400 or more connections in
its window as a strobe, places it in the "high" category (0.8) and skips beacon
scoring for it; vigile does the same, scaling the threshold to the window length
(86,400 per 24 h; ``[detectors.strobe] per_day`` in vigile.toml changes it).
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow.compute as pc

from vigile.detect import Finding, HuntContext
from vigile.detect.pairs import scoring_window
from vigile.store import Agg, Pred

STROBE_PER_DAY = 86_400
STROBE_SCORE = 0.8


class StrobeDetector:
    """Pairs that connect at least once per second on average."""

    name: ClassVar[str] = "strobe"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = ">= 86,400 connections per pair per day (RITA's strobe)."

    def run(self, ctx: HuntContext) -> list[Finding]:
        win = scoring_window(ctx)
        if win is None:
            return []
        days = max((win.end_s - win.start_s) / 86_400, 1.0)
        per_day = int(ctx.config.section("detectors.strobe").get("per_day", STROBE_PER_DAY))
        threshold = int(per_day * days)
        closed = [Pred("open", "=", False)]
        table = ctx.store.group(
            "conn", ["src", "dst"], [Agg("count", None, "n")], window=win.rows, where=closed
        )
        table = table.filter(pc.greater_equal(table.column("n"), threshold))
        # Bytes only for the few strobes: a 128-bit sum over every pair cost a third more.
        sums = ctx.store.group(
            "conn",
            ["src", "dst"],
            [Agg("sum", "orig_ip_bytes", "bytes_out")],
            window=win.rows,
            where=[*closed, Pred("src", "in", pc.unique(table.column("src")))],
        )
        table = table.join(sums, ["src", "dst"], join_type="left outer").sort_by(
            [("src", "ascending"), ("dst", "ascending")]
        )
        out = []
        for r in table.to_pylist():
            rate = r["n"] / max(win.end_s - win.start_s, 1)
            out.append(
                Finding(
                    detector="strobe",
                    src=r["src"],
                    dst=r["dst"],
                    fqdn=None,
                    score=STROBE_SCORE,
                    window_start=win.rows.start,  # type: ignore[arg-type]
                    window_end=win.rows.end,  # type: ignore[arg-type]
                    explanation=(
                        f"{r['src']} → {r['dst']} made {r['n']:,} connections "
                        f"({rate:.2f} per second on average; a strobe from {threshold:,}), "
                        "so it was not scored as a beacon."
                    ),
                    evidence={
                        "connections": r["n"],
                        "threshold": threshold,
                        "per_second": round(rate, 4),
                        "bytes_out": int(r["bytes_out"] or 0),
                        **win.evidence(),
                    },
                )
            )
        return out
