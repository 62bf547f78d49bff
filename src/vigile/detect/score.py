"""Pair and host scores: combine every detector's findings, with RITA-style modifiers.

A *pair* is an internal host and the other end of a finding; a finding about a
host alone (``dst`` empty) counts for that host only. ``roles`` findings (score 0)
and suppressed findings take no part.

Pair score. With the pair's detector scores sorted, ``s1 ≥ s2 ≥ …``::

    combined = 1 − (1 − s1) · Π (1 − s_i / 2)      (every further detector adds, halved)
    pair     = clamp(combined + Σ modifiers, 0, 1)

Modifiers (RITA v5's, with its default values) are defined and tabled in
:mod:`vigile.detect.modifiers`. Two rules keep one fact from counting twice: a
modifier that restates the pair's only detector (a lone ``rare_destination`` finding
already scores novelty and rarity) is not added, and modifiers cannot lift a pair
whose every finding a hunt pass capped (not significant, one session's keep-alive)
over that cap.

A ``pair_score`` finding is written when two or more detectors or at least one
modifier touched a pair (otherwise it would repeat its one finding). Host score:
the three best pair (or host-only) scores ``p1 ≥ p2 ≥ p3`` give
``1 − (1 − p1)(1 − p2/4)(1 − p3/8)``, kept within the severity band of ``p1``
(:func:`band_ceiling`): the top pair dominates, so that every desktop sharing the
same few periodic services does not become critical by their number, and lower
pairs order hosts within a band without raising one (a host is as severe as its
worst pair: three low findings make a low host, not a medium one);
the ``host_score`` finding names its top pair.
Pairs are ranked by score, then by their unclamped *weight*
``s1 + Σ s_i/2 + Σ modifiers``, so that two pairs that both reach 1 keep an order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigile.detect import PAIR_DETECTOR, SEVERITY_BANDS, Finding, HuntContext
from vigile.detect.modifiers import PairSignals
from vigile.detect.traffic import bounds, internal_lookup

HOST_DETECTOR = "host_score"
INFORMATIONAL = frozenset({"roles"})
#: Modifiers a detector's own score already counts: not added to a pair that has only
#: that detector's finding (with other detectors it supports them and modifiers apply).
RESTATED = {"rare_destination": ("rare destination", "first seen")}
#: Evidence keys where a hunt pass records a cap (:mod:`vigile.detect.significance`,
#: :mod:`vigile.detect.keepalive`): modifiers cannot lift a pair made only of capped
#: findings over the cap (a rare destination does not turn chance into a rhythm).
CAP_KEYS = ("not_significant", "single_session")


@dataclass
class Pair:
    """The findings about one internal host and one peer."""

    host: str
    peer: str | None
    findings: list[Finding] = field(default_factory=list)
    modifiers: list[tuple[str, float]] = field(default_factory=list)

    @property
    def detector_scores(self) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for f in self.findings:
            best[f.detector] = max(best.get(f.detector, 0.0), f.score)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))

    @property
    def weight(self) -> float:
        """Unclamped sum ``s1 + Σ s_i/2 + Σ modifiers``: orders pairs whose scores reach 1."""
        scores = [s for _, s in self.detector_scores]
        return scores[0] + sum(scores[1:]) / 2 + sum(v for _, v in self.modifiers)

    @property
    def score(self) -> float:
        scores = [s for _, s in self.detector_scores]
        rest = 1.0
        for s in scores[1:]:
            rest *= 1 - s / 2
        combined = 1 - (1 - scores[0]) * rest
        score = min(1.0, max(0.0, combined + sum(v for _, v in self.modifiers)))
        cap = self.cap
        return score if cap is None else min(score, max(cap, combined))

    @property
    def cap(self) -> float | None:
        """The highest cap a hunt pass set, when every finding of the pair carries one."""
        caps = [
            max((float(f.evidence[k]["cap"]) for k in CAP_KEYS if k in f.evidence), default=-1)
            for f in self.findings
        ]
        return None if not caps or min(caps) < 0 else max(caps)


def _restated(modifier: str, pair: Pair) -> bool:
    """Whether the pair's only detector already is what ``modifier`` adds (a lone
    ``rare_destination`` finding *is* the new, rare destination)."""
    detectors = [d for d, _ in pair.detector_scores]
    prefixes = RESTATED.get(detectors[0], ()) if len(detectors) == 1 else ()
    return any(modifier.startswith(prefix) for prefix in prefixes)


def host_of(f: Finding, internal: Callable[[str | None], bool]) -> tuple[str, str | None]:
    """(internal host, peer) of a finding; the originator when neither end is internal."""
    if f.dst and internal(f.dst) and not (f.src and internal(f.src)):
        return f.dst, f.src
    return f.src or f.dst or "?", f.dst


def score_pairs_and_hosts(ctx: HuntContext, findings: list[Finding]) -> list[Finding]:
    """The scoring pass: append ``pair_score`` and ``host_score`` findings."""
    pairs: dict[tuple[str, str | None], Pair] = {}
    internal = internal_lookup(ctx)
    for f in findings:
        if f.suppressed_by or f.detector in INFORMATIONAL or f.score <= 0:
            continue
        host, peer = host_of(f, internal)
        pairs.setdefault((host, peer), Pair(host, peer)).findings.append(f)
    if not pairs:
        return findings
    signals = PairSignals.read(ctx)
    start, end = bounds(ctx)
    added: list[Finding] = []
    for pair in pairs.values():
        if pair.peer is not None:
            mods = signals.modifiers(pair.host, pair.peer)
            pair.modifiers = [m for m in mods if not _restated(m[0], pair)]
        if pair.peer is not None and (len(pair.detector_scores) > 1 or pair.modifiers):
            added.append(_pair_finding(pair, start, end))
    by_host: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs.values():
        by_host[pair.host].append(pair)
    for host, host_pairs in sorted(by_host.items()):
        added.append(_host_finding(host, host_pairs, start, end))
    return findings + added


def _describe(pair: Pair) -> str:
    parts = ", ".join(f"{d} {s:.3f}" for d, s in pair.detector_scores)
    if pair.modifiers:
        parts += "; " + ", ".join(f"{m} ({v:+g})" for m, v in pair.modifiers)
    return parts


def _pair_finding(pair: Pair, start: Any, end: Any) -> Finding:
    # The peer's name: a finding about traffic *to* the host carries the host's own name
    # (the SNI its clients used), which would read as if the host went to itself.
    fqdn = next((f.fqdn for f in pair.findings if f.fqdn and f.dst == pair.peer), None)
    text = f"{pair.host} with {pair.peer}: {_describe(pair)} → {pair.score:.3f}."
    evidence = {
        "detectors": dict(pair.detector_scores),
        "modifiers": {m: v for m, v in pair.modifiers},
        "findings": sorted(f.id for f in pair.findings),
        "weight": round(pair.weight, 4),
    }
    return Finding(
        PAIR_DETECTOR, pair.host, pair.peer, fqdn, pair.score, start, end, text, evidence
    )


def band_ceiling(score: float) -> float:
    """Highest host score in the severity band of ``score`` (1 in the top band).

    >>> band_ceiling(0.444), band_ceiling(0.8), band_ceiling(0.95)
    (0.499, 0.899, 1.0)
    """
    above = [floor for floor, _ in SEVERITY_BANDS if floor > score]
    return round(min(above) - 0.001, 3) if above else 1.0


def _host_finding(host: str, pairs: Sequence[Pair], start: Any, end: Any) -> Finding:
    ranked = sorted(pairs, key=lambda p: (-p.score, -p.weight, p.peer or ""))
    p = [x.score for x in ranked[:3]] + [0.0, 0.0]
    combined = 1 - (1 - p[0]) * (1 - p[1] / 4) * (1 - p[2] / 8)
    score = min(combined, max(p[0], band_ceiling(p[0])))
    top = ranked[0]
    if top.peer:
        what = f"top with {top.peer} scores {top.score:.3f} ({_describe(top)})"
    else:
        best = max(top.findings, key=lambda f: f.score)
        what = f"top on its own scores {top.score:.3f} ({best.detector}: {best.explanation})"
    text = f"Host {host}: {what}; {len(pairs)} pair(s) with findings in all."
    evidence = {
        "top_peer": top.peer,
        "top_pair_score": round(top.score, 4),
        "pairs": [
            {"peer": x.peer, "score": round(x.score, 4), "weight": round(x.weight, 4)}
            for x in ranked[:10]
        ],
        "pair_count": len(pairs),
        "weight": round(top.weight, 4),
    }
    return Finding(HOST_DETECTOR, host, None, None, score, start, end, text, evidence)
