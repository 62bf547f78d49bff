"""Shared services and monitoring: periodic traffic that many hosts share is not C2.

A hunt pass (:data:`vigile.hunt.PASSES`) over the per-pair results of ``beacon`` and
``long_connection``, after the detectors and before the allowlists. It never removes
a finding: it lowers the score of the findings it explains (``score × 0.3``, so at
most 0.3, "low"), says why in the explanation and keeps the numbers in
``evidence["shared_service"]``.

**Fan-in: a shared service.** Findings are grouped by destination: a beacon to a
name by the name's registered domain (the name itself when it has none), a beacon
to an address by address, protocol and port, a long connection by address. The
*members* of a group are its distinct sources whose period lies within ±25 % of the
group's median period (every source, for long connections); a source polling the
same destination with another rhythm is not a member and keeps its score. The
destination is a shared service when

* **internal sources**: at least 3 members, and at least half of the internal hosts
  active in the window in the members' role classes (workstations, servers, BMCs,
  printers; roles as :mod:`vigile.detect.roles` infers them); an internal
  destination must have a non-workstation role. This is RITA v5's
  prevalence decrease threshold (50 %), counted within the peer group so that the
  five servers reporting to the monitoring host count as "all servers", not as 5 of
  54 hosts;
* **outside sources** reaching an internal host that serves (a non-workstation role):
  at least 3 members, the service's clients;
* and, for an outside destination, it is not **new**: first seen inside the window
  after at least 24 h of history means many hosts started calling the same new
  address at once, which is how an outbreak looks, so it is not lowered.

**Fan-out: monitoring.** One internal source whose findings reach at least 3
internal peers of one role class on the same protocol and port with the same period
is polling them. The source must not be a workstation, and BMC peers are only
monitored by admin hosts (``[network] admin_hosts``): the management plane is
reached from admin hosts only (NSA and CISA, "Hardening Baseboard Management
Controllers", 2023).

Internal → internal pairs, which RITA does not score at all, stay scored: a relay
between two internal hosts or a desktop polling a BMC is what the server perspective
is for, and these two rules explain away the polling that internal services attract.
Limit, on purpose: a C2 that more than half of a peer group beacons to with one
rhythm, to a destination seen before the window, is lowered too (as RITA's
prevalence modifier lowers it); it stays listed with its reason.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vigile.detect import Finding, HuntContext
from vigile.detect.domains import registered_domain
from vigile.detect.rare_destination import history_hours
from vigile.detect.roles import infer_roles, role_of
from vigile.detect.traffic import bounds, in_networks, internal_lookup
from vigile.store import Agg, Pred, Window

PERIODIC = ("beacon", "long_connection")
MIN_MEMBERS = 3
#: RITA v5's ``prevalence_decrease_threshold``, applied within a peer group.
PEER_SHARE = 0.5
PERIOD_TOLERANCE = 0.25
FACTOR = 0.3
NEW_AFTER_HOURS = 24
ROLE_CLASS = {"mail": "server", "dns": "server", "ntp": "server"}


@dataclass
class NetworkView:
    """Role class of each internal host and how many of each class were active."""

    ctx: HuntContext
    internal: Callable[[str | None], bool]
    classes: dict[str, str]
    active: dict[str, int]

    @classmethod
    def read(cls, ctx: HuntContext) -> NetworkView:
        internal = internal_lookup(ctx)
        roles = infer_roles(ctx)
        sources = ctx.store.group(
            "conn", ["src"], [Agg("count", None, "n")], window=Window(*bounds(ctx))
        )
        classes: dict[str, str] = {}
        active: dict[str, int] = defaultdict(int)
        for src in sources.column("src").to_pylist():
            if internal(src):
                classes[src] = role_class(role_of(roles, src, ctx))
                active[classes[src]] += 1
        view = cls(ctx, internal, classes, dict(active))
        for host in roles:
            view.classes.setdefault(host, role_class(role_of(roles, host, ctx)))
        return view

    def class_of(self, host: str | None) -> str:
        if not host:
            return "workstation"
        if host not in self.classes:
            self.classes[host] = role_class(role_of({}, host, self.ctx))
        return self.classes[host]


def role_class(role: str) -> str:
    """The peer group of a role: mail, DNS and NTP servers are servers.

    >>> role_class("mail"), role_class("bmc"), role_class("workstation")
    ('server', 'bmc', 'workstation')
    """
    return ROLE_CLASS.get(role, role)


def mark_shared_services(ctx: HuntContext, findings: list[Finding]) -> list[Finding]:
    """The pass: lower and explain findings of shared services and monitoring."""
    candidates = [
        f
        for f in findings
        if f.detector in PERIODIC and f.src and f.dst and f.score > 0 and not f.suppressed_by
    ]
    if not candidates:
        return findings
    view = NetworkView.read(ctx)
    groups: dict[tuple[Any, ...], list[Finding]] = defaultdict(list)
    for f in candidates:
        groups[_destination(f)].append(f)
    new = _new_destinations(ctx, candidates, view)
    for key, group in groups.items():
        for verdict, members in _fan_in(view, key, group, new):
            for f in members:
                _lower(f, verdict)
    polling: dict[tuple[Any, ...], list[Finding]] = defaultdict(list)
    for f in candidates:
        if "shared_service" not in f.evidence and view.internal(f.src) and view.internal(f.dst):
            port = (f.evidence.get("proto"), f.evidence.get("dst_port"))
            polling[(f.detector, f.src, *port, view.class_of(f.dst))].append(f)
    for key, group in polling.items():
        verdict, members = _fan_out(view, key, group)
        for f in members:
            _lower(f, verdict)
    return findings


def _destination(f: Finding) -> tuple[Any, ...]:
    if f.fqdn:
        return (f.detector, "name", registered_domain(f.fqdn) or f.fqdn.lower().rstrip("."))
    port = (f.evidence.get("proto"), f.evidence.get("dst_port"))
    return (f.detector, "address", f.dst, *port)


def _same_rhythm(group: Sequence[Finding]) -> list[Finding]:
    """The findings whose period lies within the tolerance of the group's median."""
    periods = [f.evidence.get("period_s") for f in group]
    known = [float(p) for p in periods if p is not None]
    if len(known) < len(periods):
        return list(group)
    median = statistics.median(known)
    return [
        f for f, p in zip(group, known, strict=True) if abs(p - median) <= PERIOD_TOLERANCE * median
    ]


def _fan_in(
    view: NetworkView, key: tuple[Any, ...], group: list[Finding], new: set[str]
) -> list[tuple[dict[str, Any], list[Finding]]]:
    members = _same_rhythm(group)
    inside = [f for f in members if view.internal(f.src)]
    outside = [f for f in members if not view.internal(f.src)]
    what = key[2]
    out = []
    sources = {f.src for f in inside}
    classes = sorted({view.class_of(s) for s in sources})
    peers = sum(view.active.get(c, 0) for c in classes)
    shared = len(sources) >= MIN_MEMBERS and len(sources) >= PEER_SHARE * peers
    # an internal destination must serve: desktops polling a desktop is no service
    serving = all(view.class_of(f.dst) != "workstation" for f in inside if view.internal(f.dst))
    if shared and serving and not any(f.dst in new for f in inside):
        text = (
            f"shared service: {len(sources)} of {peers} active {'/'.join(classes)} "
            f"hosts reach {what} with the same pattern{_rhythm(inside)}"
        )
        out.append((_verdict("shared service", text, len(sources), peers), inside))
    clients = {f.src for f in outside}
    served = {f.dst for f in outside}
    if len(clients) >= MIN_MEMBERS and all(view.class_of(d) != "workstation" for d in served):
        text = (
            f"shared service: {len(clients)} outside clients hold the same pattern with "
            f"{what} ({view.class_of(next(iter(served)))}){_rhythm(outside)}"
        )
        out.append((_verdict("served clients", text, len(clients), None), outside))
    return out


def _fan_out(
    view: NetworkView, key: tuple[Any, ...], group: list[Finding]
) -> tuple[dict[str, Any], list[Finding]]:
    _, src, proto, port, peer_class = key
    members = _same_rhythm(group)
    peers = {f.dst for f in members}
    src_class = view.class_of(src)
    admin = in_networks(src, view.ctx.config.network.admin_hosts)
    if len(peers) < MIN_MEMBERS or src_class == "workstation":
        return {}, []
    if peer_class == "bmc" and not admin:
        return {}, []
    where = f" on {port}/{proto}" if port is not None else ""
    text = (
        f"monitoring: {src} ({'admin host, ' if admin else ''}{src_class}) polls "
        f"{len(peers)} {peer_class} hosts{where} with the same pattern{_rhythm(members)}"
    )
    return _verdict("monitoring", text, len(peers), None), members


def _rhythm(group: Sequence[Finding]) -> str:
    periods = [f.evidence["period_s"] for f in group if f.evidence.get("period_s")]
    return f" (period ≈ {statistics.median(periods):.0f} s)" if periods else ""


def _verdict(kind: str, text: str, members: int, peers: int | None) -> dict[str, Any]:
    return {"kind": kind, "reason": text, "members": members, "peer_group": peers}


def _lower(f: Finding, verdict: dict[str, Any]) -> None:
    f.rescore(
        round(f.score * FACTOR, 4),
        "shared_service",
        {**verdict, "factor": FACTOR},
        f"Lowered ({verdict['reason']}): score × {FACTOR:g}",
    )


def _new_destinations(ctx: HuntContext, findings: Sequence[Finding], view: NetworkView) -> set[str]:
    """Outside destinations first seen in the window, when the store holds enough history
    before it to call anything new."""
    if history_hours(ctx) < NEW_AFTER_HOURS:
        return set()
    outside = sorted({f.dst for f in findings if f.dst and not view.internal(f.dst)})
    if not outside:
        return set()
    start, end = bounds(ctx)
    first = ctx.store.group(
        "conn",
        ["dst"],
        [Agg("min", "ts", "first")],
        window=Window(None, end),
        where=[Pred("dst", "in", outside)],
    )
    return {r["dst"] for r in first.to_pylist() if r["first"] >= start}
