"""Detection quality against ground truth: ranks, precision at k, recall, alert rate.

:func:`score_findings` compares a hunt's ranked findings with the truth records of
what was hidden (from ``vigile simulate`` or from labeled captures). A finding
*matches* a truth record when their time windows overlap and it names

* the truth's pair of addresses (either direction), or
* the truth's domain (equal, or one a subdomain of the other), or
* for a truth with no single peer (a scan), only its source host (no peer, no name):
  the source's other findings are about other traffic. A host-level finding does not
  match a truth that has a peer: a summary of the internet scanners probing a server
  says nothing about the client that downloaded its mailboxes.

An *alert* is a finding with score at or above ``alert_score`` that no allowlist
suppressed. A scenario is *detected* when a matching alert exists. Passes of an
evaluation (``vigile eval``): ingest, run detectors over the whole time span, score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigile.detect import Finding
from vigile.hunt import rank
from vigile.simulate.scenarios.base import Truth

DEFAULT_K = (1, 5, 10)
DEFAULT_ALERT_SCORE = 0.5


@dataclass
class ScenarioResult:
    """How one hidden scenario fared."""

    truth: Truth
    detected: bool
    rank: int | None  # best rank of a matching finding among all findings (1 = top)
    host_rank: int | None  # the same, among findings about the scenario's internal host
    score: float | None
    detector: str | None

    def row(self) -> dict[str, Any]:
        t = self.truth
        return {
            "scenario": t.scenario,
            "kind": t.kind,
            "src": t.src,
            "dst": t.dst or t.fqdn or "-",
            "detected": "yes" if self.detected else "no",
            "rank": self.rank,
            "host_rank": self.host_rank,
            "score": self.score,
            "detector": self.detector,
        }


@dataclass
class EvalResult:
    """The scores of one evaluation run."""

    scenarios: list[ScenarioResult]
    findings: int
    alerts: int
    false_alerts: int
    hosts: int
    days: float
    precision_at: dict[int, float] = field(default_factory=dict)
    alert_score: float = DEFAULT_ALERT_SCORE
    false_alert_rows: list[dict[str, Any]] = field(default_factory=list)
    """Every false alert (an alert matching no scenario), as ranked: what to audit."""

    @property
    def recall(self) -> float | None:
        if not self.scenarios:
            return None
        return sum(s.detected for s in self.scenarios) / len(self.scenarios)

    def per_kilohost_day(self, count: int) -> float:
        """``count`` expressed per 1,000 hosts per day."""
        return count / max(self.hosts, 1) * 1000 / max(self.days, 1e-9)

    def summary(self) -> dict[str, Any]:
        return {
            "scenarios": len(self.scenarios),
            "detected": sum(s.detected for s in self.scenarios),
            "recall": self.recall,
            **{f"precision_at_{k}": p for k, p in self.precision_at.items()},
            "findings": self.findings,
            "alerts": self.alerts,
            "alerts_per_1000_hosts_day": round(self.per_kilohost_day(self.alerts), 2),
            "false_alerts_per_1000_hosts_day": round(self.per_kilohost_day(self.false_alerts), 2),
            "hosts": self.hosts,
            "days": round(self.days, 3),
            "alert_score": self.alert_score,
        }


def _fqdn_match(a: str | None, b: str | None) -> bool:
    """Equal names, or one a subdomain of the other (``x.c2.net`` and ``c2.net``).

    >>> _fqdn_match("a.ns.c2.net", "ns.c2.net"), _fqdn_match("c2.net", "net")
    (True, False)
    """
    if not a or not b:
        return False
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    short, long_ = sorted((a, b), key=len)
    return a == b or ("." in short and long_.endswith("." + short))


def detector_label(f: Finding) -> str:
    """The detector, or for a pair score the detectors (and modifiers) it combines.

    >>> from datetime import UTC, datetime
    >>> w = datetime(2026, 1, 1, tzinfo=UTC)
    >>> ev = {"detectors": {"role_violation": 0.9, "beacon": 0.77}, "modifiers": {"x": 0.15}}
    >>> detector_label(Finding("pair_score", "a", "b", None, 1, w, w, "", ev))
    'role_violation+beacon, modifiers +0.15'
    """
    if f.detector != "pair_score":
        return f.detector
    label = "+".join(f.evidence.get("detectors", {})) or f.detector
    shift = sum(f.evidence.get("modifiers", {}).values())
    return label + (f", modifiers {shift:+.2f}" if shift else "")


def matches(f: Finding, t: Truth) -> bool:
    """Whether finding ``f`` is about scenario ``t`` (see the module docstring)."""
    if f.window_start.timestamp() > t.end or f.window_end.timestamp() < t.start:
        return False
    ends = {f.src, f.dst} - {None}
    if t.dst is not None and {t.src, t.dst} <= ends:
        return True
    if _fqdn_match(f.fqdn, t.fqdn):
        return True
    return t.dst is None and f.dst is None and f.fqdn is None and f.src == t.src


def score_findings(
    findings: Sequence[Finding],
    truths: Sequence[Truth],
    *,
    is_internal: Callable[[str], bool],
    hosts: int,
    days: float,
    ks: Sequence[int] = DEFAULT_K,
    alert_score: float = DEFAULT_ALERT_SCORE,
) -> EvalResult:
    """Score ranked ``findings`` against ``truths``.

    >>> from datetime import UTC, datetime
    >>> t = Truth(0, "bmc_beacon", "beacon", "10.0.0.5", "6.6.6.6", None, 0, 2e9, 10)
    >>> w = datetime(2026, 1, 1, tzinfo=UTC)
    >>> f = [Finding("x", "10.0.0.9", "1.1.1.1", None, .9, w, w, ""),
    ...      Finding("x", "6.6.6.6", "10.0.0.5", None, .8, w, w, "")]
    >>> r = score_findings(f, [t], is_internal=lambda a: a.startswith("10."), hosts=10, days=1)
    >>> r.scenarios[0].rank, r.scenarios[0].host_rank, r.recall, r.precision_at[1]
    (2, 1, 1.0, 0.0)
    """
    ranked = rank(list(findings))  # as ``vigile hunt`` lists them: suppressed ones last
    hits = [[matches(f, t) for t in truths] for f in ranked]
    results = []
    for j, t in enumerate(truths):
        host = t.src if is_internal(t.src) or t.dst is None else t.dst
        host_rank = 0
        best: tuple[int, int | None, Finding] | None = None
        for i, f in enumerate(ranked):
            about_host = host in (f.src, f.dst)
            host_rank += about_host
            if hits[i][j] and best is None:
                best = (i + 1, host_rank if about_host else None, f)
        alert = any(
            hits[i][j] and f.score >= alert_score and not f.suppressed_by
            for i, f in enumerate(ranked)
        )
        results.append(
            ScenarioResult(
                t,
                alert,
                best[0] if best else None,
                best[1] if best else None,
                round(best[2].score, 4) if best else None,
                detector_label(best[2]) if best else None,
            )
        )
    alerts = [i for i, f in enumerate(ranked) if f.score >= alert_score and not f.suppressed_by]
    false_rows = [_alert_row(i + 1, ranked[i]) for i in alerts if not any(hits[i])]
    precision = {
        k: (sum(any(h) for h in hits[:k]) / min(k, len(ranked))) if ranked else 0.0 for k in ks
    }
    return EvalResult(
        results,
        len(ranked),
        len(alerts),
        len(false_rows),
        hosts,
        days,
        precision,
        alert_score,
        false_rows,
    )


FALSE_ALERT_COLUMNS = ("rank", "detector", "src", "dst", "score", "explanation")


def _alert_row(rank: int, f: Finding) -> dict[str, Any]:
    return {
        "rank": rank,
        "detector": detector_label(f),
        "src": f.src,
        "dst": f.dst or f.fqdn,
        "score": round(f.score, 4),
        "explanation": f.explanation,
    }
