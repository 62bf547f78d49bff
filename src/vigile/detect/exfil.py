"""exfil: unusually large outbound transfers, against a robust baseline.

Outbound bytes of an internal host are the IP bytes it sent to external
addresses, both as originator (an upload) and as responder (a server answering an
external client: a mailbox download through OWA or IMAP is large *responses* to
one client). The ``src`` of a finding is always the internal host, ``dst`` the
external peer that received most of the bytes.

Three tests, each on ``bucket_minutes`` (default 60) slices over
``lookback_days`` (default 14) of history before the window:

1. **host peak**: the host's largest slice of outbound bytes in the window against
   its own earlier slices; when it has fewer than ``min_samples`` (4) of them,
   against its role's peer group (other hosts of the same role, see
   :mod:`vigile.detect.roles`);
2. **pair peak**: the largest slice sent to one peer against the largest earlier
   (peer, slice) volume of the same host (a maximum, not a median: most single-peer
   slices are tiny, so a median would flag every ordinary large e-mail); catches one
   client of a busy server;
3. **window total** against earlier windows of the same length, once there are
   ``min_samples`` of them (Splunk's "Email servers sending high volume traffic to
   hosts" uses mean + 3σ over at least 4 samples; we use median and MAD, which a
   single earlier burst cannot inflate).

A test fires when the robust z-score is at least 3 (not used by the pair test), the
factor over the median (pair test: over the maximum) at least ``min_factor`` (2) and
the volume at least ``min_bytes`` (1 MB). A slice that reaches into the window
counts as part of it. The explanation and the score use the first test that fired,
in the order window total, host peak, pair peak. Score:
``0.5 + 0.4 · min(1, log10(factor) / 2)`` (factor 10 → 0.7, 100 → 0.9), plus the
modifiers the explanation names: +0.1 when the peer is new (first seen in the
window), +0.05 when it is rare, +0.05 when the upload/download ratio rose at least
3×. A host with no baseline of its own and no peers is not scored (the finding
would be a guess); one compared only with its peer group is capped at 0.6.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np

from vigile.detect import Finding, HuntContext
from vigile.detect.rare_destination import PeerStats, history_hours, peer_stats
from vigile.detect.roles import infer_roles, role_of
from vigile.detect.traffic import Baseline, HostFlows, bounds, directed_flows, robust_baseline
from vigile.store import Window

MIN_Z = 3.0
#: History a store must hold before a slice (or a destination) can be judged new.
HISTORY = timedelta(hours=24)


@dataclass
class Test:
    """One fired test: what was measured, against what, and how far above."""

    kind: str
    value: float
    baseline: Baseline
    baseline_of: str
    #: The pair test compares with the largest earlier slice, where a z-score means nothing.
    reference: float | None = None
    #: Host peaks must also clear ``min_factor`` × the busy-hour level (95th percentile)
    #: of the baseline: hourly traffic follows the working day, so the median is a night
    #: hour and an ordinary busy hour would otherwise stand far above it.
    busy: float | None = None

    @property
    def factor(self) -> float:
        ref = self.baseline.median if self.reference is None else self.reference
        return self.value / max(ref, 1.0)

    @property
    def z(self) -> float:
        return math.inf if self.reference is not None else self.baseline.z(self.value)


class ExfilDetector:
    """Outbound volume far above the host's own or its role's robust baseline."""

    name: ClassVar[str] = "exfil"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = "Unusually large outbound transfers (uploads or served responses)."

    def run(self, ctx: HuntContext) -> list[Finding]:
        opts = ctx.config.section("detectors.exfil")
        self.min_samples = int(opts.get("min_samples", 4))
        self.min_factor = float(opts.get("min_factor", 2.0))
        self.min_bytes = float(opts.get("min_bytes", 1_000_000))
        self.bucket = bucket = timedelta(minutes=float(opts.get("bucket_minutes", 60)))
        start, end = bounds(ctx)
        lookback = Window(start - timedelta(days=float(opts.get("lookback_days", 14))), end)
        flows = directed_flows(ctx, lookback, bucket)
        roles = infer_roles(ctx)
        role = {h: role_of(roles, h, ctx) for h in flows}
        peers, _ = peer_stats(ctx)
        windows = self._earlier_windows(ctx, flows, start, end)
        oldest, _ = ctx.store.time_bounds("conn")
        self.oldest = oldest or start
        out = []
        for host in sorted(flows):
            tests = self._tests(host, flows, role, start, windows)
            if tests:
                out.append(self._finding(ctx, host, flows[host], tests, peers, start, end))
        return out

    def _earlier_windows(
        self, ctx: HuntContext, flows: dict[str, HostFlows], start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        length = end - start
        n = int(history_hours(ctx) * 3600 // max(length.total_seconds(), 1))
        return [(start - (k + 1) * length, start - k * length) for k in range(n)]

    def _tests(
        self,
        host: str,
        flows: dict[str, HostFlows],
        role: dict[str, str],
        start: datetime,
        windows: list[tuple[datetime, datetime]],
    ) -> list[Test]:
        f = flows[host]
        cut = start - self.bucket  # a slice that reaches into the window belongs to it
        now = {b: v for b, v in f.out.items() if b > cut}
        if not now:
            return []
        tests = []
        if len(windows) >= self.min_samples:
            totals = [sum(v for b, v in f.out.items() if a <= b < z) for a, z in windows]
            tests.append(
                Test(
                    "window total",
                    sum(now.values()),
                    robust_baseline(totals),
                    "own earlier windows",
                )
            )
        history = [v for b, v in f.out.items() if b <= cut]
        own = robust_baseline(history)
        peak = max(now.values())
        rolling = self._rolling_peak(f, now)
        if own.samples >= self.min_samples:
            tests.append(Test("host peak", peak, own, "own history", busy=_busy(history)))
        elif rolling is not None:
            tests.append(rolling)
        else:
            others = [
                v
                for h, g in flows.items()
                if h != host and role[h] == role[host]
                for v in g.out.values()
            ]
            group = robust_baseline(others)
            if group.samples >= self.min_samples:
                tests.append(
                    Test("host peak", peak, group, f"{role[host]} peer group", busy=_busy(others))
                )
        earlier = [v for (_, b), v in f.pair.items() if b <= cut]
        if len(earlier) >= self.min_samples:
            pair_peak = max(v for (_, b), v in f.pair.items() if b > cut)
            tests.append(
                Test(
                    "pair peak",
                    pair_peak,
                    robust_baseline(earlier),
                    "largest earlier single-peer slice",
                    reference=max(earlier),
                )
            )
        return [
            t
            for t in tests
            if t.z >= MIN_Z
            and t.factor >= self.min_factor
            and t.value >= self.min_bytes
            and (t.busy is None or t.value >= self.min_factor * t.busy)
        ]

    def _rolling_peak(self, f: HostFlows, now: dict[datetime, float]) -> Test | None:
        """The window's largest slice judged against the host's slices before *it*.

        For a window with little or no history before it (a hunt over the whole store,
        as ``vigile eval`` runs): the slices earlier in the window are the host's own
        history too. Only slices after the store's first ``HISTORY_HOURS`` count, so a
        store's first day is still not judged against a few hours of itself.
        """
        ready = {b: v for b, v in now.items() if b >= self.oldest + HISTORY}
        if not ready:
            return None
        when = max(ready, key=lambda b: (ready[b], b))
        earlier = [v for b, v in f.out.items() if b < when]
        before = robust_baseline(earlier)
        if before.samples < self.min_samples:
            return None
        return Test("host peak", ready[when], before, "own earlier slices", busy=_busy(earlier))

    def _finding(
        self,
        ctx: HuntContext,
        host: str,
        f: HostFlows,
        tests: list[Test],
        peers: dict[str, PeerStats],
        start: datetime,
        end: datetime,
    ) -> Finding:
        best = tests[0]  # in order of preference: window total, host peak, pair peak
        by_peer: dict[str, float] = defaultdict(float)
        for (p, b), v in f.pair.items():
            if b > start - self.bucket:
                by_peer[p] += v
        top, top_bytes = max(by_peer.items(), key=lambda kv: kv[1])
        total = sum(by_peer.values())
        score = 0.5 + 0.4 * min(1.0, math.log10(max(best.factor, 1.0)) / 2)
        modifiers = self._modifiers(f, peers.get(top), start, ctx)
        score += sum(m[1] for m in modifiers)
        if best.baseline_of.endswith("peer group"):
            score = min(score, 0.6)
        if best.reference is None:
            against = (
                f"the {best.baseline_of} median {_fmt(best.baseline.median)} (robust z "
                f"{best.z:,.1f}, {best.baseline.samples} samples)"
            )
            if best.busy is not None:
                against += f" and {best.value / max(best.busy, 1.0):,.1f}× its busy hours"
        else:
            against = f"the {best.baseline_of} {_fmt(best.reference)}"
        explanation = (
            f"{host} sent {_fmt(total)} out in the window; {best.kind} {_fmt(best.value)} is "
            f"{best.factor:,.1f}× {against}; {top_bytes / total:.0%} went to {top}"
        )
        if modifiers:
            explanation += "; raised by " + ", ".join(f"{m[0]} (+{m[1]:g})" for m in modifiers)
        evidence: dict[str, Any] = {
            "bytes_out": round(total),
            "top_peer_bytes": round(top_bytes),
            "tests": [
                {
                    "kind": t.kind,
                    "value": round(t.value),
                    "median": round(t.baseline.median),
                    "sigma": round(t.baseline.sigma, 1),
                    "samples": t.baseline.samples,
                    "reference": None if t.reference is None else round(t.reference),
                    "busy_p95": None if t.busy is None else round(t.busy),
                    "factor": round(t.factor, 2),
                    "z": None if t.reference is not None else round(t.z, 2),
                    "baseline": t.baseline_of,
                }
                for t in tests
            ],
            "modifiers": {m[0]: m[1] for m in modifiers},
            "window": [start.isoformat(), end.isoformat()],
        }
        return Finding(self.name, host, top, None, score, start, end, explanation + ".", evidence)

    def _modifiers(
        self, f: HostFlows, peer: PeerStats | None, start: datetime, ctx: HuntContext
    ) -> list[tuple[str, float]]:
        mods = []
        if peer is not None and peer.first_seen >= max(start, self.oldest + HISTORY):
            mods.append(("new destination", 0.1))
        if peer is not None and len(peer.hosts_in_window) == 1 and peer.prevalence < 0.5:
            mods.append(("rare destination", 0.05))
        cut = start - self.bucket
        ratio_now = _ratio(f, lambda b: b > cut)
        ratio_then = _ratio(f, lambda b: b <= cut)
        if ratio_then is not None and ratio_now is not None and ratio_now >= 3 * ratio_then:
            mods.append(("upload/download ratio up", 0.05))
        return mods


def _busy(values: list[float]) -> float:
    """The busy-hour level of earlier slices: their 95th percentile.

    >>> _busy([1.0] * 19 + [100.0])
    5.95
    """
    return round(float(np.percentile(values, 95)), 6) if values else 0.0


def _ratio(f: HostFlows, keep: Any) -> float | None:
    out = sum(v for b, v in f.out.items() if keep(b))
    inb = sum(v for b, v in f.inb.items() if keep(b))
    return out / inb if inb > 0 and out > 0 else None


def _fmt(n: float) -> str:
    """Bytes in SI units.

    >>> _fmt(1_500_000), _fmt(999)
    ('1.5 MB', '999 B')
    """
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
