"""The host page's data: role and evidence, findings, destinations, traffic over time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from vigile.config import Config, HostConfig
from vigile.store import Agg, Pred, Store
from vigile.web.queries import fill_series, host_findings, plain_row
from vigile.web.roles import HostRole, infer_roles


def top_destinations(
    store: Store, config: Config, host: str, limit: int = 10
) -> list[dict[str, Any]]:
    """Where a host sends the most bytes, with prevalence and first seen in the store.

    Prevalence is the share of internal hosts that contacted the destination.
    """
    top = store.group(
        "conn",
        ["dst"],
        [
            Agg("count", None, "connections"),
            Agg("sum", "orig_ip_bytes", "bytes_out"),
            Agg("sum", "resp_ip_bytes", "bytes_in"),
            Agg("max", "ts", "last_seen"),
        ],
        where=[Pred("src", "=", host)],
        order_by=["bytes_out"],
        descending=True,
        limit=limit,
    ).to_pylist()
    dsts = [r["dst"] for r in top]
    contacts = store.group(
        "conn", ["dst", "src"], [Agg("min", "ts", "first")], where=[Pred("dst", "in", dsts)]
    ).to_pylist()
    srcs = store.group("conn", ["src"], [Agg("count", None, "n")]).column("src").to_pylist()
    internal = {s for s in srcs if config.network.is_internal(s)}
    first_seen: dict[str, datetime] = {}
    clients: dict[str, set[str]] = {d: set() for d in dsts}
    for c in contacts:
        first_seen[c["dst"]] = min(first_seen.get(c["dst"], c["first"]), c["first"])
        if c["src"] in internal:
            clients[c["dst"]].add(c["src"])
    out = []
    for r in top:
        prevalence = len(clients[r["dst"]]) / len(internal) if internal else 0.0
        out.append(
            plain_row(
                {
                    **r,
                    "first_seen": first_seen.get(r["dst"]),
                    "prevalence": round(prevalence, 4),
                    "internal": config.network.is_internal(r["dst"]),
                }
            )
        )
    return out


def host_detail(store: Store, config: Config, host: str) -> dict[str, Any] | None:
    """Everything the host page shows, or None for a host the store never saw."""
    findings = host_findings(store, host)
    answered = store.group("conn", [], [Agg("count", None, "n")], where=[Pred("dst", "=", host)])
    role = infer_roles(store, config, [host])[host]
    reported = [f for f in findings if f["src"] == host and "role" in f["evidence"]]
    if reported and not config.hosts.get(host, HostConfig(host)).role:
        f = reported[0]
        why = f"reported by the {f['detector']} detector"
        role = HostRole(str(f["evidence"]["role"]), [why, *role.evidence])
    destinations = top_destinations(store, config, host)
    if not findings and not destinations and not answered.column("n")[0].as_py():
        return None
    active = [f for f in findings if f["suppressed_by"] is None]
    named = config.hosts.get(host)
    return {
        "host": host,
        "name": named.name if named else None,
        "role": role.role,
        "role_evidence": role.evidence,
        "score": max((f["score"] for f in active), default=0.0),
        "severity": active[0]["severity"] if active else "none",
        "findings": findings,
        "destinations": destinations,
    }


def host_traffic(store: Store, host: str, every: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    """Bytes the host sent and received per time bucket (as originator and responder)."""
    buckets: dict[datetime, dict[str, int]] = {}
    for side, out_col, in_col in (
        ("src", "orig_ip_bytes", "resp_ip_bytes"),
        ("dst", "resp_ip_bytes", "orig_ip_bytes"),
    ):
        table = store.time_series(
            "conn",
            every,
            [Agg("sum", out_col, "out"), Agg("sum", in_col, "in")],
            where=[Pred(side, "=", host)],
        )
        for r in table.to_pylist():
            b = buckets.setdefault(r["bucket"], {"bytes_out": 0, "bytes_in": 0})
            b["bytes_out"] += int(r["out"] or 0)
            b["bytes_in"] += int(r["in"] or 0)
    return fill_series(buckets, every, ("bytes_out", "bytes_in"))
