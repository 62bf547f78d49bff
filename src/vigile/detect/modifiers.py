"""Pair modifiers for :mod:`vigile.detect.score`: what moves a pair's score, and why.

Modifiers, with RITA v5's default values (``defaultConfig`` in RITA's
``config/config.go``), each named with its numbers in the explanation:

==============================  =====  =============================================
modifier                        value  when
==============================  =====  =============================================
missing HTTP Host header        +0.10  any of the pair's HTTP requests lacks it
rare user agent                 +0.15  the pair's most used User-Agent is used by only
                                       one source in the window
rare JA3                        +0.15  the pair's most used JA3 is used by only one source
rare destination                +0.15  prevalence ≤ 2 % (share of active internal hosts
                                       that opened connections to the peer)
common destination              −0.15  prevalence ≥ 50 %
first seen                      +0.15  the peer was first seen in the window, after ≥ 24 h
                                       of history
admin host to management plane  −0.15  vigile's own: the host is in ``[network]
                                       admin_hosts`` and the peer a BMC (management
                                       subnet or configured role); prevalence is skipped
==============================  =====  =============================================

Prevalence is skipped too for a server's own service traffic (vigile's own): a DNS
server reaching port 53 (its forwarders), a mail server 25, 465 or 587 (other
domains' mail servers), an NTP server 123 (its upstream clocks). Such a host is the
only one of its kind by design, so every peer it serves through is "rare".

Deviations from RITA, on purpose: prevalence counts only with 3 or more active
internal hosts (on a one-host network every destination has 100 %) and covers
internal destinations too (desktops polling a mail server); "first seen" needs
24 h of history instead of RITA's stored history of months, so a store's first day
calls nothing new. Prevalence and first seen apply to peers the host opened
connections to, not to clients of its services.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from vigile.detect import HuntContext
from vigile.detect.rare_destination import PeerStats, history_hours, peer_stats
from vigile.detect.roles import infer_roles, role_of
from vigile.detect.traffic import bounds, in_networks, internal_lookup
from vigile.store import Agg, Pred, Window

#: RITA v5's default modifier values (``defaultConfig`` in RITA's ``config/config.go``).
RITA = {
    "prevalence_score_increase": 0.15,
    "prevalence_increase_threshold": 0.02,
    "prevalence_score_decrease": 0.15,
    "prevalence_decrease_threshold": 0.5,
    "first_seen_score_increase": 0.15,
    "missing_host_count_score_increase": 0.10,
    "rare_signature_score_increase": 0.15,
}
#: Prevalence means nothing on a network of one or two hosts (every destination is 100 %).
MIN_ACTIVE_HOSTS = 3
#: vigile's own: an admin host (``[network] admin_hosts``) talking to a BMC is its job.
ADMIN_DECREASE = 0.15


@dataclass
class PairSignals:
    """What the modifiers need, read once per hunt."""

    ctx: HuntContext
    peers: dict[str, PeerStats]
    active_hosts: int
    history: float
    http: dict[frozenset[str], list[dict[str, Any]]]
    tls: dict[frozenset[str], list[dict[str, Any]]]
    sources: dict[str, dict[str, int]]
    source_totals: dict[str, int]
    internal_share: dict[tuple[str, str], float]
    #: (host, peer) pairs made only of the host's role service traffic (see the module).
    role_service: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def read(cls, ctx: HuntContext) -> PairSignals:
        window = Window(*bounds(ctx))
        peers, active = peer_stats(ctx)
        http = _by_pair(ctx, "http", ["host", "user_agent"], window)
        tls = _by_pair(ctx, "tls", ["ja3"], window)
        sources, totals = {}, {}
        for table, column in (("http", "user_agent"), ("tls", "ja3")):
            sources[column], totals[column] = _sources_per(ctx, table, column, window)
        shares = _internal_shares(ctx, window, active)
        service = _role_service_pairs(ctx, window)
        return cls(
            ctx, peers, active, history_hours(ctx), http, tls, sources, totals, shares, service
        )

    def modifiers(self, host: str, peer: str) -> list[tuple[str, float]]:
        key = frozenset((host, peer))
        mods = self._missing_host(self.http.get(key, []))
        mods += self._rare("user_agent", "user agent", self.http.get(key, []))
        mods += self._rare("ja3", "JA3", self.tls.get(key, []))
        st = self.peers.get(peer)
        if st is not None and host not in st.initiated_by:
            st = None  # prevalence and first seen describe destinations, not clients
        share = st.prevalence if st is not None else self.internal_share.get((host, peer))
        if self._admin_to_management(host, peer):
            mods.append(("admin host to the management plane (expected)", -ADMIN_DECREASE))
            share = None  # one admin host polling the BMCs is rare by design
        if (host, peer) in self.role_service:
            share = None  # the org's one DNS/mail/NTP server: every upstream is "rare"
        if share is not None and self.active_hosts >= MIN_ACTIVE_HOSTS:
            if share <= RITA["prevalence_increase_threshold"]:
                text = f"rare destination ({share:.0%} of {self.active_hosts} hosts)"
                mods.append((text, RITA["prevalence_score_increase"]))
            elif share >= RITA["prevalence_decrease_threshold"]:
                text = f"common destination ({share:.0%} of {self.active_hosts} hosts)"
                mods.append((text, -RITA["prevalence_score_decrease"]))
        start, _ = bounds(self.ctx)
        if st is not None and st.first_seen >= start and self.history >= 24:
            text = f"first seen {st.first_seen:%Y-%m-%d %H:%M} UTC"
            mods.append((text, RITA["first_seen_score_increase"]))
        return mods

    def _admin_to_management(self, host: str, peer: str) -> bool:
        net = self.ctx.config.network
        if not net.admin_hosts or not in_networks(host, net.admin_hosts):
            return False
        configured = self.ctx.config.hosts.get(peer)
        return in_networks(peer, net.management) or (
            configured is not None and configured.role == "bmc"
        )

    @staticmethod
    def _missing_host(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
        total = sum(r["n"] for r in rows)
        missing = sum(r["n"] for r in rows if not r["host"])
        if missing:
            text = f"missing HTTP Host header on {missing} of {total} requests"
            return [(text, RITA["missing_host_count_score_increase"])]
        return []

    def _rare(self, column: str, what: str, rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
        counts: dict[str, int] = defaultdict(int)
        for r in rows:
            if r[column]:
                counts[r[column]] += r["n"]
        if not counts:
            return []
        value = max(sorted(counts), key=lambda v: counts[v])
        users, total = self.sources[column].get(value, 0), self.source_totals[column]
        if users == 1 and total > 1:
            text = f"rare {what} '{value}' (used by 1 of {total} sources)"
            return [(text, RITA["rare_signature_score_increase"])]
        return []


def _by_pair(
    ctx: HuntContext, table: str, columns: list[str], window: Window
) -> dict[frozenset[str], list[dict[str, Any]]]:
    rows = ctx.store.group(
        table, ["src", "dst", *columns], [Agg("count", None, "n")], window=window
    )
    out: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows.to_pylist():
        out[frozenset((r["src"], r["dst"]))].append(r)
    return out


def _sources_per(
    ctx: HuntContext, table: str, column: str, window: Window
) -> tuple[dict[str, int], int]:
    rows = ctx.store.group(
        table, [column], [Agg("count_distinct", "src", "sources")], window=window
    )
    total = ctx.store.group(table, [], [Agg("count_distinct", "src", "n")], window=window)
    n = int(total.column("n")[0].as_py() or 0) if total.num_rows else 0
    return {r[column]: int(r["sources"]) for r in rows.to_pylist() if r[column]}, n


#: Ports a server of each role opens to do its job (prevalence means nothing there).
ROLE_SERVICE_PORTS = {"dns": {53}, "mail": {25, 465, 587}, "ntp": {123}}


def _role_service_pairs(ctx: HuntContext, window: Window) -> frozenset[tuple[str, str]]:
    """(host, peer) pairs where a DNS, mail or NTP server opened only its service port."""
    roles = infer_roles(ctx)
    ports = {h: ROLE_SERVICE_PORTS.get(role_of(roles, h, ctx)) for h in roles}
    hosts = sorted(h for h, p in ports.items() if p)
    if not hosts:
        return frozenset()
    rows = ctx.store.group(
        "conn",
        ["src", "dst", "dst_port"],
        [Agg("count", None, "n")],
        window=window,
        where=[Pred("src", "in", hosts)],
    )
    used: dict[tuple[str, str], set[int | None]] = defaultdict(set)
    for src, dst, port in zip(
        *(rows.column(c).to_pylist() for c in ("src", "dst", "dst_port")), strict=True
    ):
        used[(src, dst)].add(port)
    return frozenset(k for k, p in used.items() if p <= (ports[k[0]] or set()))


def _internal_shares(ctx: HuntContext, window: Window, active: int) -> dict[tuple[str, str], float]:
    """For internal host → internal peer pairs: the share of active internal hosts that
    opened connections to that peer (prevalence of an internal destination)."""
    rows = ctx.store.group("conn", ["src", "dst"], [Agg("count", None, "n")], window=window)
    internal = internal_lookup(ctx)
    clients: dict[str, set[str]] = defaultdict(set)
    for src, dst in zip(*(rows.column(c).to_pylist() for c in ("src", "dst")), strict=True):
        if internal(src) and internal(dst):
            clients[dst].add(src)
    n = max(active, 1)
    return {(c, d): len(cs) / n for d, cs in clients.items() for c in cs}
