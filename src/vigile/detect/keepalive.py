"""Keep-alives: check-ins that are one TCP session, not a beacon's new connections.

A beacon opens a connection per check-in: a new source port and a new handshake
each time. A long-lived TCP session that stays idle longer than Zeek's
``tcp_inactivity_timeout`` (5 min by default, ``init-bare.zeek``) is split by Zeek
into several ``conn`` records: one four-tuple (the same source port) and, after the
first, no handshake (``conn_state`` ``OTH``, "no SYN seen, just midstream traffic").
Its periodic records are the session's heartbeat, the way push-notification
channels work (the Windows Push Notification Service keeps one TLS session open and
sends a keep-alive about every half hour).

This hunt pass, run after the detectors, finds ``beacon`` findings about TCP address
pairs whose records in the window all share one source port and of which at most
one (the session's start) is not midstream. Such a pair is a long-lived session
with a heartbeat, not a beacon in RITA's sense (repeated connections): its score is
capped at 0.6 (medium). It is not dropped, because a long-lived session to an
address with no name is still worth a look; the reason and the numbers go to the
explanation and to ``evidence["single_session"]``. Records without a connection
state (NetFlow records whose flags do not decide one) are never judged: without the
state, a reused port proves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vigile.detect import Finding, HuntContext
from vigile.store import Agg, Pred, Window

SESSION_CAP = 0.6
MIDSTREAM = "OTH"
KEYS = ["src", "dst", "dst_port"]


def cap_single_session_beacons(ctx: HuntContext, findings: list[Finding]) -> list[Finding]:
    """The pass: cap beacons whose check-ins are the keep-alives of one TCP session."""
    candidates = [
        f
        for f in findings
        if f.detector == "beacon"
        and f.evidence.get("pair_kind") == "ip"
        and f.evidence.get("proto") == "tcp"
        and f.score > SESSION_CAP
        and f.src
        and f.dst
    ]
    by_window: dict[tuple[datetime, datetime], list[Finding]] = {}
    for f in candidates:
        by_window.setdefault((f.window_start, f.window_end), []).append(f)
    for (start, end), group in by_window.items():
        sessions = _sessions(ctx, Window(start, end), group)
        for f in group:
            found = sessions.get((f.src, f.dst, f.evidence.get("dst_port")))
            if found is not None:
                _cap(f, *found)
    return findings


def _sessions(
    ctx: HuntContext, window: Window, group: Sequence[Finding]
) -> dict[tuple[str | None, str | None, int | None], tuple[int, int, int]]:
    """(src, dst, port) → (records, source port, records with a handshake) for the pairs
    whose records are one session."""
    where = [
        Pred("proto", "=", "tcp"),
        Pred("src", "in", sorted({f.src for f in group if f.src})),
        Pred("dst", "in", sorted({f.dst for f in group if f.dst})),
    ]
    rows = ctx.store.group(
        "conn",
        KEYS,
        [
            Agg("count", None, "records"),
            Agg("count", "conn_state", "with_state"),
            Agg("count_distinct", "src_port", "ports"),
            Agg("min", "src_port", "port"),
        ],
        window=window,
        where=where,
    ).to_pylist()
    started = ctx.store.group(
        "conn",
        KEYS,
        [Agg("count", None, "n")],
        window=window,
        where=[*where, Pred("conn_state", "!=", MIDSTREAM)],
    ).to_pylist()
    handshakes = {(r["src"], r["dst"], r["dst_port"]): int(r["n"]) for r in started}
    out = {}
    for r in rows:
        key = (r["src"], r["dst"], r["dst_port"])
        opened = handshakes.get(key, 0)
        if r["ports"] == 1 and r["with_state"] == r["records"] and opened <= 1:
            out[key] = (int(r["records"]), int(r["port"]), opened)
    return out


def _cap(f: Finding, records: int, port: int, opened: int) -> None:
    f.rescore(
        SESSION_CAP,
        "single_session",
        {
            "records": records,
            "src_port": port,
            "records_with_handshake": opened,
            "cap": SESSION_CAP,
        },
        f"All {records} records are one TCP session (source port {port}, {records - opened} "
        "midstream, without a handshake): a long-lived session's keep-alive rather than a "
        f"beacon's new connections, so the score is capped at {SESSION_CAP:g}",
    )
