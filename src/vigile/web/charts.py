"""Chart data for a finding: what its plots show, from the store.

Which plots a finding gets follows from its detector: beacons get the histogram
of inter-arrival times and the timeline of check-ins; every finding gets the bytes
its host sent to the other side per hour, drawn against the baseline when the
detector put one in its evidence (``baseline``/``baseline_bytes``, exfiltration).
The drawing itself is done in the browser by plotly.js (``static/console.js``).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from vigile.store import Agg, Pred, Store, Window
from vigile.web.queries import MAX_POINTS, fill_series, plain

BASELINE_KEYS = ("baseline", "baseline_bytes", "baseline_bytes_per_hour")


def chart_kinds(finding: dict[str, Any]) -> list[str]:
    """Names of the plots a finding page shows, in order.

    >>> chart_kinds({"detector": "beacon", "dst": "192.0.2.1"})
    ['intervals', 'checkins', 'series']
    >>> chart_kinds({"detector": "exfil", "dst": None})
    ['series']
    """
    kinds = []
    if "beacon" in finding["detector"] and finding.get("dst"):
        kinds += ["intervals", "checkins"]
    return [*kinds, "series"]


def _window(finding: dict[str, Any]) -> Window:
    return Window(
        datetime.fromisoformat(finding["window_start"]),
        datetime.fromisoformat(finding["window_end"]),
    )


def checkins(store: Store, finding: dict[str, Any]) -> dict[str, Any]:
    """Each connection of the pair in the finding's window and the gaps between them."""
    if not finding.get("src") or not finding.get("dst"):
        return {"t": [], "bytes": [], "intervals": []}
    table = store.scan(
        "conn",
        ["ts", "orig_ip_bytes"],
        window=_window(finding),
        where=[Pred("src", "=", finding["src"]), Pred("dst", "=", finding["dst"])],
        order_by=["ts"],
        limit=MAX_POINTS,
    )
    times = table.column("ts").to_pylist()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return {
        "t": [plain(t) for t in times],
        "bytes": [int(b or 0) for b in table.column("orig_ip_bytes").to_pylist()],
        "intervals": gaps,
    }


def pair_series(
    store: Store, finding: dict[str, Any], every: timedelta = timedelta(hours=1)
) -> dict[str, Any]:
    """Bytes the finding's host sent to the other side per bucket, over the whole store."""
    host, other = finding.get("src"), finding.get("dst")
    buckets: dict[datetime, dict[str, int]] = {}
    if host:
        sides = [("src", "dst", "orig_ip_bytes"), ("dst", "src", "resp_ip_bytes")]
        for me, them, col in sides:
            where = [Pred(me, "=", host)] + ([Pred(them, "=", other)] if other else [])
            table = store.time_series("conn", every, [Agg("sum", col, "sent")], where=where)
            for r in table.to_pylist():
                b = buckets.setdefault(r["bucket"], {"bytes": 0})
                b["bytes"] += int(r["sent"] or 0)
    out = fill_series(buckets, every, ("bytes",))
    baseline = next(
        (finding["evidence"][k] for k in BASELINE_KEYS if k in finding["evidence"]), None
    )
    out["baseline"] = baseline if isinstance(baseline, int | float) else None
    out["window"] = [finding["window_start"], finding["window_end"]]
    out["label"] = f"bytes {host} sent" + (f" to {other}" if other else "")
    return out


def chart_data(store: Store, finding: dict[str, Any], kind: str) -> dict[str, Any]:
    """The data of one plot of a finding (``kind`` from :func:`chart_kinds`)."""
    if kind in ("intervals", "checkins"):
        return checkins(store, finding)
    if kind == "series":
        return pair_series(store, finding)
    raise KeyError(kind)
