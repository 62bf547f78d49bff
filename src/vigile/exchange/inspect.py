"""Run every registered check over the inputs and shape the result.

The steps, in order: walk the inputs (:func:`vigile.exchange.collect.walk`), feed
each record to the checks that read its kind, collect their findings, merge those
that share an id, mark those the admin suppressed (:mod:`vigile.exchange.suppress`),
rank them (unsuppressed first, score, then time) and build the timeline of events at
high severity or above. Writing the findings to the store is the caller's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vigile.detect import Finding
from vigile.exchange import ExchangeCheck, registered_checks
from vigile.exchange.collect import Collection, walk
from vigile.exchange.suppress import SuppressRule, apply_rules

#: Severities that make an event part of the attack timeline.
MALICIOUS = ("high", "critical")


@dataclass
class InspectResult:
    """Ranked findings, the timeline, coverage per source and the problems met."""

    findings: list[Finding]
    collection: Collection
    checks: list[str]

    @property
    def timeline(self) -> list[Finding]:
        """High and critical findings in time order (first and last malicious event)."""
        hits = [f for f in self.findings if f.severity in MALICIOUS and not f.suppressed_by]
        return sorted(hits, key=lambda f: (f.window_start, f.detector))


def _merge(findings: list[Finding]) -> list[Finding]:
    by_id: dict[str, Finding] = {}
    for f in findings:
        seen = by_id.get(f.id)
        if seen is None:
            by_id[f.id] = f
        else:
            seen.evidence["repeats"] = seen.evidence.get("repeats", 1) + 1
            seen.score = max(seen.score, f.score)
    return list(by_id.values())


def inspect_paths(
    paths: Sequence[Path],
    checks: Sequence[type[ExchangeCheck]] | None = None,
    suppress: Sequence[SuppressRule] = (),
) -> InspectResult:
    """Inspect ``paths`` (folders, files, zip archives) with ``checks`` (default: all).

    Findings matching a ``suppress`` rule are kept, marked and ranked last.
    """
    classes = list(checks) if checks is not None else registered_checks()
    instances = [c() for c in classes]
    by_kind: dict[str, list[ExchangeCheck]] = {}
    for check in instances:
        for kind in check.kinds:
            by_kind.setdefault(kind, []).append(check)
    collection = Collection()
    for record in walk(list(paths), collection):
        for check in by_kind.get(record.kind, ()):
            check.feed(record)
    findings = _merge([f for check in instances for f in check.finish()])
    apply_rules(findings, suppress)
    findings.sort(key=lambda f: (bool(f.suppressed_by), -f.score, f.window_start, f.detector, f.id))
    return InspectResult(findings, collection, [c.name for c in classes])
