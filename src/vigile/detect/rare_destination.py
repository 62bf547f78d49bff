"""rare_destination: new and rare external destinations, and new network owners.

For every external address an internal host initiated a connection to in the
window, with the store's history up to the window's end:

* **first seen**: the oldest connection between any internal host and it;
  it is *new* when first seen inside the window **and** the store holds at least
  ``min_history_hours`` (default 24) of traffic before the window. Without that
  history nothing can be called new, and the detector says so instead of flagging
  every destination on the first day;
* **prevalence**: the share of internal hosts active in the window that talked to
  it (Elastic's "rare destination" idea); *rare* is at most ``rare_share``
  (default 0.1) and only counts when at least ``min_hosts`` (default 3) internal
  hosts were active, since on a one-host network every destination has 100 %;
* **network owner**: with ``asn_database`` (a MaxMind-format ``.mmdb`` file the
  user gives, e.g. GeoLite2-ASN; read with ``maxminddb``), the autonomous system
  of the destination; a *new owner* is an AS no internal host reached before.

Score: 0.35 for a new destination, +0.1 if also rare, +0.15 for a new owner;
rare alone is not reported (it feeds the host score as a modifier). The ceiling
is 0.6 (medium): novelty alone never makes a high finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import maxminddb
import pyarrow as pa
import pyarrow.compute as pc

from vigile.config import match_networks
from vigile.detect import Finding, HuntContext
from vigile.detect.traffic import bounds
from vigile.errors import ConfigError
from vigile.store import Agg, Window


@dataclass(frozen=True)
class PeerStats:
    """What the store knows about one external address."""

    first_seen: datetime
    hosts_in_window: frozenset[str]
    prevalence: float
    initiated_by: frozenset[str] = frozenset()


def history_hours(ctx: HuntContext) -> float:
    """Hours of traffic the store holds before the window starts."""
    start, _ = bounds(ctx)
    oldest, _ = ctx.store.time_bounds("conn")
    return 0.0 if oldest is None else max(0.0, (start - oldest).total_seconds() / 3600)


def peer_stats(ctx: HuntContext) -> tuple[dict[str, PeerStats], int]:
    """Stats of every external address that talked with an internal host, and the number
    of internal hosts active in the window."""
    start, end = bounds(ctx)
    pairs = ctx.store.group(
        "conn",
        ["src", "dst", "proto"],
        [Agg("min", "ts", "first"), Agg("max", "ts", "last"), Agg("max", "resp_pkts", "back")],
        window=Window(None, end),
    )
    nets = ctx.config.network.internal
    s_in = match_networks(pairs.column("src"), nets)
    d_in = match_networks(pairs.column("dst"), nets)
    recent = pc.greater_equal(pairs.column("last"), pa.scalar(start, pairs.column("last").type))
    recent_np = recent.to_numpy(zero_copy_only=False)
    # A responder is a live host only if it sent something back (or the source does not
    # say): the targets of a scan that never answered are addresses, not hosts, and
    # counting them would make every destination look rare.
    back = pc.fill_null(pc.greater(pairs.column("back"), 0), True).to_numpy(zero_copy_only=False)
    active = set(pc.filter(pairs.column("src"), pa.array(s_in & recent_np)).to_pylist())
    active |= set(pc.filter(pairs.column("dst"), pa.array(d_in & recent_np & back)).to_pylist())
    cross = s_in != d_in
    t = pairs.filter(pa.array(cross))
    as_src = pa.array(s_in[cross])
    is_recent = pa.array(recent_np[cross])
    transport = pc.is_in(t.column("proto"), pa.array(["tcp", "udp"]))
    oriented = pa.table(
        {
            "host": pc.if_else(as_src, t.column("src"), t.column("dst")),
            "peer": pc.if_else(as_src, t.column("dst"), t.column("src")),
            "first": t.column("first"),
        }
    )
    first = dict(
        zip(*_columns(oriented.group_by("peer").aggregate([("first", "min")])), strict=True)
    )
    hosts = _host_sets(oriented.filter(is_recent))
    initiated = _host_sets(oriented.filter(pc.and_(pc.and_(is_recent, as_src), transport)))
    n = max(len(active), 1)
    stats = {
        p: PeerStats(
            t,
            hosts.get(p, frozenset()),
            len(hosts.get(p, ())) / n,
            initiated.get(p, frozenset()),
        )
        for p, t in first.items()
    }
    return stats, len(active)


def _columns(table: pa.Table) -> list[list[Any]]:
    return [table.column(c).to_pylist() for c in table.column_names]


def _host_sets(oriented: pa.Table) -> dict[str, frozenset[str]]:
    grouped = oriented.group_by("peer").aggregate([("host", "distinct")])
    peers, host_lists = _columns(grouped)
    return {p: frozenset(h) for p, h in zip(peers, host_lists, strict=True)}


class AsnLookup:
    """Autonomous system number and organisation from a MaxMind-format database."""

    def __init__(self, path: Path) -> None:
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
            raise ConfigError(f"{path}: cannot read ASN database: {e}") from None

    def owner(self, address: str) -> str | None:
        """``"AS<n> <organisation>"`` or ``None`` when the address is not in the file."""
        try:
            record: Any = self._reader.get(address)
        except ValueError:
            return None
        if not isinstance(record, dict) or "autonomous_system_number" not in record:
            return None
        org = record.get("autonomous_system_organization", "")
        return f"AS{record['autonomous_system_number']} {org}".strip()


def open_asn_lookup(ctx: HuntContext) -> AsnLookup | None:
    """The lookup configured in ``[detectors.rare_destination] asn_database``, if any."""
    path = ctx.config.section("detectors.rare_destination").get("asn_database")
    if not path:
        return None
    base = ctx.config.path.parent if ctx.config.path else Path()
    return AsnLookup(base / str(path))


class RareDestinationDetector:
    """New (first-seen) and rare external destinations, and new network owners."""

    name: ClassVar[str] = "rare_destination"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = "Destinations first seen in the window, rare ones, new AS owners."

    def run(self, ctx: HuntContext) -> list[Finding]:
        opts = ctx.config.section("detectors.rare_destination")
        start, _end = bounds(ctx)
        hist = history_hours(ctx)
        if hist < float(opts.get("min_history_hours", 24)):
            return []
        stats, n_hosts = peer_stats(ctx)
        asn = open_asn_lookup(ctx)
        known_owners = _owners_before(stats, start, asn)
        rare_share = float(opts.get("rare_share", 0.1))
        min_hosts = int(opts.get("min_hosts", 3))
        out = []
        for peer, st in sorted(stats.items()):
            if st.first_seen < start or not st.initiated_by:
                continue
            rare = n_hosts >= min_hosts and st.prevalence <= rare_share
            owner = asn.owner(peer) if asn else None
            new_owner = owner is not None and owner not in known_owners
            score = 0.35 + (0.1 if rare else 0.0) + (0.15 if new_owner else 0.0)
            for host in sorted(st.initiated_by):
                out.append(self._finding(ctx, host, peer, st, score, rare, owner, new_owner, hist))
        return out

    def _finding(
        self,
        ctx: HuntContext,
        host: str,
        peer: str,
        st: PeerStats,
        score: float,
        rare: bool,
        owner: str | None,
        new_owner: bool,
        hist: float,
    ) -> Finding:
        start, end = bounds(ctx)
        parts = [
            f"{peer} was first seen {st.first_seen:%Y-%m-%d %H:%M} UTC, inside the window "
            f"after {hist:.0f} h of history",
            f"{len(st.hosts_in_window)} internal host(s) ({st.prevalence:.0%}) talked to it",
        ]
        if rare:
            parts.append("rare")
        if owner:
            parts.append(f"network owner {owner}" + (" never reached before" if new_owner else ""))
        evidence = {
            "first_seen": st.first_seen.isoformat(),
            "prevalence": round(st.prevalence, 4),
            "hosts": len(st.hosts_in_window),
            "history_hours": round(hist, 1),
            "rare": rare,
            "owner": owner,
            "new_owner": new_owner,
        }
        return Finding(
            self.name,
            host,
            peer,
            None,
            score,
            start,
            end,
            f"New destination for {host}: " + "; ".join(parts) + ".",
            evidence,
        )


def _owners_before(stats: dict[str, PeerStats], start: datetime, asn: AsnLookup | None) -> set[str]:
    if asn is None:
        return set()
    return {o for p, st in stats.items() if st.first_seen < start and (o := asn.owner(p))}
