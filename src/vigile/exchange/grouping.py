"""Fold many matching log lines from one client into one finding.

A scan or an exploit run leaves hundreds of matching lines; the admin needs one
finding per client with the patterns it matched, their counts, the first and last
time and a few example lines, not hundreds of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vigile.detect import Finding
from vigile.exchange import UNKNOWN_TIME, LogRecord

EXAMPLES = 5


@dataclass
class Group:
    """Matching lines of one client."""

    score: float
    patterns: dict[str, int] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    subject: str | None = None
    server: str | None = None
    last_where: str = ""


class Grouper:
    """Collects per-client groups and turns them into findings."""

    def __init__(self, check: str) -> None:
        self.check = check
        self.groups: dict[str, Group] = {}

    def add(self, client: str, pattern: str, score: float, record: LogRecord, **shown: Any) -> None:
        """Count ``record`` for ``client`` under ``pattern`` (a record may match several).

        ``shown`` goes into the examples, except ``subject`` (the server's name, for
        ``fqdn``) and ``server`` (its address, for ``dst``).
        """
        group = self.groups.setdefault(client, Group(score))
        group.score = max(group.score, score)
        group.patterns[pattern] = group.patterns.get(pattern, 0) + 1
        subject, server = shown.pop("subject", None), shown.pop("server", None)
        if group.last_where == record.where():
            return
        group.last_where = record.where()
        group.count += 1
        group.subject = group.subject or subject
        group.server = group.server or server
        if record.ts is not None:
            group.first = record.ts if group.first is None else min(group.first, record.ts)
            group.last = record.ts if group.last is None else max(group.last, record.ts)
        if len(group.examples) < EXAMPLES:
            group.examples.append({"where": record.where(), **shown})

    def findings(self, describe: dict[str, str]) -> list[Finding]:
        """One finding per group; ``describe`` maps a pattern to its sentence."""
        out = []
        for client, g in sorted(self.groups.items()):
            what = "; ".join(f"{describe[p]} ({n})" for p, n in sorted(g.patterns.items()))
            span = ""
            if g.first is not None and g.last is not None:
                span = f" at {g.first:%Y-%m-%d %H:%M:%S} UTC"
                if g.last != g.first:
                    span = (
                        f" between {g.first:%Y-%m-%d %H:%M:%S} and {g.last:%Y-%m-%d %H:%M:%S} UTC"
                    )
            out.append(
                Finding(
                    detector=self.check,
                    src=client or None,
                    dst=g.server,
                    fqdn=g.subject,
                    score=g.score,
                    window_start=g.first or UNKNOWN_TIME,
                    window_end=g.last or UNKNOWN_TIME,
                    explanation=f"{client or 'an unknown client'} sent {g.count} matching "
                    f"request(s){span}: {what}.",
                    evidence={
                        "patterns": g.patterns,
                        "count": g.count,
                        "examples": g.examples,
                        "where": g.examples[0]["where"],
                    },
                )
            )
        return out
