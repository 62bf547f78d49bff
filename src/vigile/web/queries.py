"""What the console, its JSON API and the HTML report show, read through the store.

Every function returns plain JSON-ready values (dicts, lists, ISO-8601 strings), so
the API returns them as they are and the pages and the report render the same data.
Reads go through the engine-neutral store contract only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from vigile.config import Config
from vigile.schema import TRAFFIC_TABLES
from vigile.store import Agg, Pred, Store
from vigile.web.roles import infer_roles

#: Hosts listed on the overview.
HOST_LIMIT = 50
#: Points a chart gets at most (check-ins, buckets), to keep pages light.
MAX_POINTS = 20_000


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def plain_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(v) for k, v in row.items()}


def load_findings(store: Store, where: Sequence[Pred] = ()) -> list[dict[str, Any]]:
    """Findings ranked: unsuppressed first, then by score, with evidence parsed."""
    rows = [plain_row(r) for r in store.scan("findings", where=where).to_pylist()]
    for r in rows:
        r["evidence"] = json.loads(r["evidence"] or "{}")
        r.pop("created_at", None)
    rows.sort(key=lambda r: (r["suppressed_by"] is not None, -r["score"], r["detector"], r["id"]))
    return rows


def find_finding(store: Store, finding_id: str) -> dict[str, Any] | None:
    """One finding by id, or None."""
    rows = load_findings(store, [Pred("id", "=", finding_id)])
    return rows[0] if rows else None


def host_findings(store: Store, host: str) -> list[dict[str, Any]]:
    """Findings about a host, as originator or as the other side, ranked."""
    rows = {r["id"]: r for r in load_findings(store, [Pred("src", "=", host)])}
    for r in load_findings(store, [Pred("dst", "=", host)]):
        rows.setdefault(r["id"], r)
    return sorted(
        rows.values(), key=lambda r: (r["suppressed_by"] is not None, -r["score"], r["id"])
    )


def _host_scores(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}
    for f in findings:
        if not f["src"]:
            continue
        h = hosts.setdefault(
            f["src"],
            {"host": f["src"], "score": 0.0, "severity": "none", "findings": 0, "suppressed": 0},
        )
        if isinstance(f["evidence"].get("role"), str):
            h.setdefault("detector_role", f["evidence"]["role"])
        if f["suppressed_by"] is not None:
            h["suppressed"] += 1
            continue
        h["findings"] += 1
        if f["score"] > h["score"]:
            h.update(score=f["score"], severity=f["severity"], top_finding=f["id"])
            h["top_detector"] = f["detector"]
    return hosts


def ranked_hosts(store: Store, config: Config, limit: int = HOST_LIMIT) -> list[dict[str, Any]]:
    """Hosts ranked by their highest unsuppressed finding, then internal talkers."""
    hosts = _host_scores(load_findings(store))
    for side, sent in (("src", "orig_ip_bytes"), ("dst", "resp_ip_bytes")):
        talkers = store.group(
            "conn",
            [side],
            [Agg("sum", sent, "bytes_out")],
            order_by=["bytes_out"],
            descending=True,
            limit=500,
        )
        for address in talkers.column(side).to_pylist():
            if address not in hosts and config.network.is_internal(address):
                hosts[address] = {
                    "host": address,
                    "score": 0.0,
                    "severity": "none",
                    "findings": 0,
                    "suppressed": 0,
                }
    ranked = sorted(hosts.values(), key=lambda h: (-h["score"], -h["findings"], h["host"]))
    ranked = ranked[:limit]
    roles = infer_roles(store, config, [h["host"] for h in ranked])
    for h in ranked:
        named = config.hosts.get(h["host"])
        h["name"] = named.name if named else None
        reported = h.pop("detector_role", None)
        fixed = bool(named and named.role)
        h["role"] = roles[h["host"]].role if fixed or not reported else reported
    return ranked


def detector_counts(store: Store) -> list[dict[str, Any]]:
    """Findings per detector, with how many are suppressed and the top score."""
    table = store.group(
        "findings",
        ["detector"],
        [
            Agg("count", None, "findings"),
            Agg("count", "suppressed_by", "suppressed"),
            Agg("max", "score", "max_score"),
        ],
        order_by=["findings", "max_score"],
        descending=True,
    )
    return [plain_row(r) for r in table.to_pylist()]


def ingest_summary(store: Store) -> dict[str, Any]:
    """What is ingested and when: rows per table, inputs, bad rows, time span."""
    first, last = store.time_bounds("conn")
    sources = store.group(
        "sources",
        [],
        [
            Agg("count", None, "inputs"),
            Agg("sum", "bad_rows", "bad_rows"),
            Agg("max", "ingested_at", "last_ingested_at"),
        ],
    ).to_pylist()[0]
    return {
        "rows": {t: store.count(t) for t in TRAFFIC_TABLES},
        "inputs": sources["inputs"],
        "bad_rows": plain(sources["bad_rows"]) or 0,
        "last_ingested_at": plain(sources["last_ingested_at"]),
        "first_ts": plain(first),
        "last_ts": plain(last),
    }


def overview(store: Store, config: Config) -> dict[str, Any]:
    """Everything the overview page shows."""
    return {
        "hosts": ranked_hosts(store, config),
        "detectors": detector_counts(store),
        "ingest": ingest_summary(store),
    }


def fill_series(
    rows: dict[datetime, dict[str, int]], every: timedelta, names: Sequence[str]
) -> dict[str, Any]:
    if not rows:
        return {"every_seconds": every.total_seconds(), "t": [], **{n: [] for n in names}}
    start, end = min(rows), max(rows)
    steps = min(int((end - start) / every) + 1, MAX_POINTS)
    times = [start + i * every for i in range(steps)]
    out: dict[str, Any] = {"every_seconds": every.total_seconds(), "t": [plain(t) for t in times]}
    for n in names:
        out[n] = [int(rows.get(t, {}).get(n, 0)) for t in times]
    return out


def suppression_counts(store: Store) -> dict[str, int]:
    """How many findings each allowlist entry suppresses."""
    table = store.group(
        "findings",
        ["suppressed_by"],
        [Agg("count", None, "n")],
        where=[Pred("suppressed_by", "is not null")],
    )
    return {r["suppressed_by"]: r["n"] for r in table.to_pylist()}


def sources(store: Store, reject_limit: int = 200) -> dict[str, Any]:
    """Ingested inputs (newest first) and the first bad records with where they were."""
    inputs = [plain_row(r) for r in store.scan("sources").to_pylist()]
    inputs.sort(key=lambda r: (r["ingested_at"], r["path"]), reverse=True)
    paths = {r["source_id"]: r["path"] for r in inputs}
    rejects = store.scan(
        "rejects",
        ["source_id", "position", "position_unit", "reason", "raw"],
        order_by=["source_id", "position"],
        limit=reject_limit,
    ).to_pylist()
    for r in rejects:
        r["path"] = paths.get(r["source_id"])
        r["source_id"] = str(r["source_id"])
        r["raw"] = (r["raw"] or "")[:200]
    for r in inputs:
        r["source_id"] = str(r["source_id"])  # 63-bit ids do not survive JavaScript numbers
    return {"inputs": inputs, "rejects": rejects, "total_rejects": store.count("rejects")}
