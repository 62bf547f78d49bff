"""Long connections: pairs that stay connected for hours (a shell, a tunnel, an implant).

Follows RITA v5 (``analysis/analysis.go``, ``calculateBucketedScore``; thresholds
from its default ``config.hjson``): the total duration of an IP pair is the sum of
its closed connections' durations in the window plus, for each connection still
open, its latest duration (Zeek ``open_conn.log`` snapshots; a session that later
closed counts once, closed). Pairs below one hour are not reported; the score
rises linearly through RITA's steps: 1 h -> 0.2, 4 h -> 0.4, 8 h -> 0.6, 12 h and
more -> 0.8.

vigile's own step beyond RITA: a client of an internal host's *service* (the host
answered that port for at least ``SERVICE_CLIENTS`` distinct clients in the window)
whose hours add up from sessions each shorter than an hour (a phone's IMAP sessions,
one after another all day) is a service in use, not a held line: its score is
halved and the explanation says why. One session of an hour or more, or one still
open, keeps RITA's score.
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import Finding, HuntContext
from vigile.detect.pairs import ScoringWindow, scoring_window
from vigile.detect.traffic import internal_lookup
from vigile.store import Agg, Pred, Window

#: (duration in seconds, score) steps, RITA's long_connection_score_thresholds.
STEPS = ((3600.0, 0.2), (14400.0, 0.4), (28800.0, 0.6), (43200.0, 0.8))
#: Distinct answered clients that make a port an internal host's service.
SERVICE_CLIENTS = 3


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
            [Agg("sum", "duration", "d"), Agg("count", None, "n"), Agg("max", "duration", "m")],
            window=win.rows,
            where=[Pred("open", "=", False)],
        )
        opened = _open_sessions(ctx, win.rows)
        long_enough = pc.greater_equal(closed.column("d").fill_null(0.0), STEPS[0][0])
        if opened:
            srcs = pa.array([s for s, _ in opened])
            with_open = pc.is_in(closed.column("src"), value_set=srcs)
            long_enough = pc.or_(long_enough, with_open)
        for r in closed.filter(long_enough).to_pylist():
            t = totals[(r["src"], r["dst"])]
            t["closed"], t["connections"], t["longest"] = r["d"] or 0.0, r["n"], r["m"] or 0.0
        for (src, dst), (seconds, n) in opened.items():
            t = totals[(src, dst)]
            t["open"] += seconds
            t["open_connections"] += n
        found = {k: t for k, t in totals.items() if t["closed"] + t["open"] >= STEPS[0][0]}
        short = [k for k, t in found.items() if not t["open_connections"] and t["longest"] < 3600]
        for key, clients in _service_clients(ctx, win.rows, short).items():
            found[key]["service_clients"] = clients
        return [_finding(ctx, win, src, dst, t) for (src, dst), t in found.items()]


def _service_clients(
    ctx: HuntContext, window: Window, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """For pairs whose responder is internal: answered clients of the responder's port
    the pair used most, when that port is a service (``SERVICE_CLIENTS`` or more)."""
    internal = internal_lookup(ctx)
    pairs = [(s, d) for s, d in pairs if internal(d)]
    if not pairs:
        return {}
    dsts = sorted({d for _, d in pairs})
    used = ctx.store.group(
        "conn",
        ["src", "dst", "dst_port"],
        [Agg("sum", "duration", "d")],
        window=window,
        where=[Pred("dst", "in", dsts), Pred("open", "=", False)],
    )
    top: dict[tuple[str, str], tuple[float, int]] = {}
    for r in used.to_pylist():
        key = (r["src"], r["dst"])
        if r["dst_port"] is not None and (r["d"] or 0.0) > top.get(key, (-1.0, 0))[0]:
            top[key] = (r["d"] or 0.0, int(r["dst_port"]))
    served = ctx.store.group(
        "conn",
        ["dst", "dst_port"],
        [Agg("count_distinct", "src", "clients")],
        window=window,
        where=[Pred("dst", "in", dsts), Pred("resp_payload", "=", True)],
    )
    clients = {(r["dst"], r["dst_port"]): int(r["clients"]) for r in served.to_pylist()}
    out = {}
    for key in pairs:
        if key in top:
            n = clients.get((key[1], top[key][1]), 0)
            if n >= SERVICE_CLIENTS:
                out[key] = n
    return out


def _open_sessions(ctx: HuntContext, window: Window) -> dict[tuple[str, str], tuple[float, int]]:
    """Latest duration of each still-open connection (one per uid), per pair.

    A snapshot taken before the window's end counts (a session opened days before is
    still the window's), as long as the session was last seen inside the window: its
    start plus its latest duration reaches the window's start. One last seen before it
    (a capture or sensor that stopped while it was open, long ago) is no evidence of a
    connection during the window, and would otherwise be counted in every later hunt.
    """
    snaps = ctx.store.group(
        "conn",
        ["src", "dst", "uid"],
        [Agg("max", "duration", "d"), Agg("min", "ts", "t")],
        window=Window(None, window.end),
        where=[Pred("open", "=", True), Pred("uid", "is not null")],
    )
    if window.start is not None and snaps.num_rows:
        began = snaps.column("t").cast(pa.timestamp("us", "UTC")).cast(pa.int64())
        seconds = snaps.column("d").fill_null(0.0).to_numpy()
        last_us = began.fill_null(np.iinfo(np.int64).max).to_numpy() + seconds * 1e6
        snaps = snaps.filter(pa.array(last_us >= window.start.timestamp() * 1e6))
    if not snaps.num_rows:
        return {}
    ended = ctx.store.group(
        "conn",
        ["uid"],
        [Agg("count", None, "n")],
        window=Window(None, window.end),
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
    score = rita = bucketed_score(total)
    service = int(t.get("service_clients", 0))
    if service:
        score = round(rita / 2, 6)
    ev = {
        "total_duration_s": round(total, 3),
        "closed_duration_s": round(t["closed"], 3),
        "open_duration_s": round(t["open"], 3),
        "connections": int(t["connections"]),
        "open_connections": int(t["open_connections"]),
        "rita_steps_s": [s for s, _ in STEPS],
        "rita_long_conn_score": rita,
        "longest_closed_s": round(t.get("longest", 0.0), 3),
        **({"service_clients": service} if service else {}),
        **win.evidence(),
    }
    hours = total / 3600
    still = f", {int(t['open_connections'])} still open" if t["open_connections"] else ""
    text = (
        f"{src} → {dst} was connected for {hours:,.1f} h in total ({total:,.0f} s over "
        f"{int(t['connections'])} closed connections{still}); RITA's steps score that {rita:.2f}."
    )
    if service:
        text += (
            f" Every session was under an hour, to a service {dst} answers for {service} "
            f"clients: a service in use, halved to {score:.2f}."
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
