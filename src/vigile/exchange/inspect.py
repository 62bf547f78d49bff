"""Run every registered check over the inputs and shape the result.

The steps, in order: walk the inputs (:func:`vigile.exchange.collect.walk`), feed
each record to the checks that read its kind, collect their findings, merge those
that share an id, mark those the admin suppressed (:mod:`vigile.exchange.suppress`),
rank them (unsuppressed first, score, then time) and build the timeline of events at
high severity or above. Writing the findings to the store is the caller's choice;
:meth:`InspectResult.runs` says what each check examined, so a rerun replaces only
that (see :func:`examined_window`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from vigile.detect import Finding
from vigile.exchange import UNKNOWN_TIME, ExchangeCheck, LogBlock, registered_checks
from vigile.exchange.collect import Collection, walk_blocks
from vigile.exchange.suppress import SuppressRule, apply_rules
from vigile.store import FindingScope, Window

#: Severities that make an event part of the attack timeline.
MALICIOUS = ("high", "critical")


@dataclass
class InspectResult:
    """Ranked findings, the timeline, coverage per source and the problems met."""

    findings: list[Finding]
    collection: Collection
    checks: list[str]
    #: The record kinds each check read (``ExchangeCheck.kinds``), by check name.
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def timeline(self) -> list[Finding]:
        """High and critical findings in time order (first and last malicious event)."""
        hits = [f for f in self.findings if f.severity in MALICIOUS and not f.suppressed_by]
        return sorted(hits, key=lambda f: (f.window_start, f.detector))

    def runs(self, source: str) -> list[tuple[list[str], FindingScope, list[Finding]]]:
        """The checks grouped by the window they examined, each group with its scope
        (``source``, that window; traces, not verdicts) and its findings, for
        :meth:`vigile.store.StateWriter.replace_findings`, all in one transaction.
        Checks that examined nothing (no
        logs of a source they read) are named in no group: their findings replace only
        those with the same ids, under an empty window at ``UNKNOWN_TIME``."""
        windows: dict[str, Window | None] = {
            c: examined_window(self.collection, self.kinds.get(c, ())) for c in self.checks
        }
        groups: dict[Window | None, list[str]] = {}
        for check, window in windows.items():
            groups.setdefault(window, []).append(check)
        for f in self.findings:  # a finding under another name than its check's: kept too
            groups.setdefault(windows.get(f.detector, Window()), [])
        nothing = Window(UNKNOWN_TIME, UNKNOWN_TIME)
        return [
            (
                [] if window is None else checks,
                FindingScope(source, nothing if window is None else window, verdicts=False),
                [f for f in self.findings if windows.get(f.detector, Window()) == window],
            )
            for window, checks in groups.items()
        ]


def examined_window(collection: Collection, kinds: Sequence[str]) -> Window | None:
    """The time a check reading ``kinds`` examined: what every one of its log sources
    covered (oldest to newest entry), or all time for files on disk, which every run
    looks at afresh whatever their time; ``None`` for nothing (a source it reads has no
    timed entry in the copy, or two of them cover no common time).

    Findings from logs that have since rotated away lie outside what a newer copy
    covers, so a rerun keeps them. Where a check reads two sources (IIS and HttpProxy),
    only the span both cover was examined in full.

    >>> examined_window(Collection(), ["file"])
    Window(start=None, end=None)
    >>> examined_window(Collection(), ["iis"]) is None
    True
    """
    start, end = None, None
    for kind in kinds:
        if kind == "file":
            continue
        cov = collection.coverage.get(kind)
        if cov is None or cov.oldest is None or cov.newest is None:
            return None
        start = cov.oldest if start is None else max(start, cov.oldest)
        # Half-open windows: the newest entry is inside.
        newest = cov.newest + timedelta(microseconds=1)
        end = newest if end is None else min(end, newest)
    if start is not None and end is not None and start >= end:
        return None
    return Window(start, end)


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


#: Allocations between two young-generation collections while inspecting. A block
#: allocates a list per row that lives until the block is done: at Python's default
#: (700) the collector would walk every block several times before it dies, a tenth
#: of the run. Cycles are still collected, only less often.
BLOCK_ALLOCATIONS = 50_000


@contextmanager
def _young_collections_every(allocations: int) -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], allocations), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _feed_block(block: LogBlock, checks: Sequence[ExchangeCheck]) -> None:
    """The block to checks that take blocks, its rows one by one to the others."""
    per_row = []
    for check in checks:
        feed_block = getattr(check, "feed_block", None)
        if feed_block is None:
            per_row.append(check)
        else:
            feed_block(block)
    if per_row:
        for record in block.records():
            for check in per_row:
                check.feed(record)


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
    with _young_collections_every(BLOCK_ALLOCATIONS):
        for item in walk_blocks(list(paths), collection):
            if isinstance(item, LogBlock):
                _feed_block(item, by_kind.get(item.kind, ()))
                continue
            for check in by_kind.get(item.kind, ()):
                check.feed(item)
    findings = _merge([f for check in instances for f in check.finish()])
    apply_rules(findings, suppress)
    findings.sort(key=lambda f: (bool(f.suppressed_by), -f.score, f.window_start, f.detector, f.id))
    kinds = {c.name: tuple(c.kinds) for c in classes}
    return InspectResult(findings, collection, [c.name for c in classes], kinds)
