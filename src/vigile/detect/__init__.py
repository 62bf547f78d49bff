"""Detectors and the finding record.

A detector is a small class with one job. It declares the tables it needs, reads
them through the store contract (:mod:`vigile.store`), and returns
:class:`Finding` records; it never touches the console or the CLI.

Built-in detectors register exactly as a third-party one does: through the entry
point group ``vigile.detectors`` in ``pyproject.toml``::

    [project.entry-points."vigile.detectors"]
    beacon = "vigile.detect.beacon:BeaconDetector"

Contract of :meth:`Detector.run`:

* read-only on the store; deterministic for the same store, config and window;
* every number used to score goes into ``Finding.evidence`` so scores are reproducible;
* ``explanation`` is one plain sentence with the numbers that matter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, TypeVar, cast

import pyarrow as pa

from vigile.config import Config
from vigile.schema import FINDINGS
from vigile.store import Store, Window

T = TypeVar("T")

ENTRY_POINT_GROUP = "vigile.detectors"

#: Score bands: a finding's severity follows from its score alone.
SEVERITY_BANDS = ((0.9, "critical"), (0.75, "high"), (0.5, "medium"), (0.0, "low"))


def severity_for(score: float) -> str:
    """Severity band of a score.

    >>> severity_for(0.95), severity_for(0.8), severity_for(0.6), severity_for(0.1)
    ('critical', 'high', 'medium', 'low')
    """
    for floor, name in SEVERITY_BANDS:
        if score >= floor:
            return name
    return "low"


#: The scoring pass's finding about a pair: an internal host and a peer, whichever end
#: opened the connections its findings are about (:mod:`vigile.detect.score`).
PAIR_DETECTOR = "pair_score"


def subject_text(detector: str, src: str | None, dst: str | None, fqdn: str | None) -> str:
    """A finding's subject as every listing writes it: ``src → dst`` (the name when one
    is known), ``↔`` between the two ends of a pair, whose direction it does not say.

    >>> subject_text("beacon", "10.0.0.5", "198.51.100.7", "c2.example")
    '10.0.0.5 → c2.example'
    >>> subject_text(PAIR_DETECTOR, "10.0.0.5", "198.51.100.7", None)
    '10.0.0.5 ↔ 198.51.100.7'
    >>> subject_text("host_score", "10.0.0.5", None, None)
    '10.0.0.5'
    """
    arrow = " ↔ " if detector == PAIR_DETECTOR else " → "
    return arrow.join(x for x in (src, fqdn or dst) if x)


@dataclass
class Finding:
    """A detector's verdict on one subject (a host, a pair, a name) in one window."""

    detector: str
    src: str | None
    dst: str | None
    fqdn: str | None
    score: float
    window_start: datetime
    window_end: datetime
    explanation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None
    suppressed_by: str | None = None
    #: What was examined when it is not the stored traffic (``exchange:<server>``);
    #: part of the id, so the same trace on two servers is two findings.
    scope: str | None = None

    def __post_init__(self) -> None:
        self.score = float(min(1.0, max(0.0, self.score)))
        if self.severity is None:
            self.severity = severity_for(self.score)

    def rescore(self, score: float, key: str, details: dict[str, Any], because: str) -> None:
        """A hunt pass's verdict on this finding: a new score, with the trail kept.

        ``evidence[key]`` gets ``details`` and ``score_before``; the explanation gains
        ``because`` (a sentence without its full stop) and the score it had before, so
        a lowered or capped finding always says what moved it and from where.
        """
        before = self.score
        self.score = float(min(1.0, max(0.0, score)))
        self.severity = severity_for(self.score)
        self.evidence[key] = {**details, "score_before": before}
        self.explanation = f"{self.explanation.rstrip()} {because} (was {before:.3f})."

    @property
    def subject(self) -> str:
        """The subject as listings write it (:func:`subject_text`)."""
        return subject_text(self.detector, self.src, self.dst, self.fqdn)

    @property
    def id(self) -> str:
        """Stable across reruns: detector, subject and window start (and scope) hashed."""
        key = f"{self.detector}|{self.src}|{self.dst}|{self.fqdn}|{self.window_start.isoformat()}"
        if self.scope is not None:  # hunt findings keep the ids they had before scopes
            key += f"|{self.scope}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Finding:
        """A finding read back from the ``findings`` table (its id is unchanged)."""
        return cls(
            detector=row["detector"],
            src=row["src"],
            dst=row["dst"],
            fqdn=row["fqdn"],
            score=row["score"],
            window_start=row["window_start"],
            window_end=row["window_end"],
            explanation=row["explanation"],
            evidence=json.loads(row["evidence"]),
            severity=row["severity"],
            suppressed_by=row["suppressed_by"],
            scope=row.get("scope"),
        )

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape documented in docs/findings.md."""
        return {
            "id": self.id,
            "detector": self.detector,
            "src": self.src,
            "dst": self.dst,
            "fqdn": self.fqdn,
            "score": round(self.score, 4),
            "severity": self.severity,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "explanation": self.explanation,
            "evidence": self.evidence,
            "suppressed_by": self.suppressed_by,
            **({"scope": self.scope} if self.scope is not None else {}),
        }


@dataclass(frozen=True)
class HuntContext:
    """What a detector gets: the store, the network model and the scoring window."""

    store: Store
    config: Config
    window: Window
    window_kind: str = "last 24 h ending at the newest timestamp"
    _shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per hunt, then the same (read-only) result for every caller.

        For what several detectors and passes derive from the same data (the roles
        inferred from traffic): the store does not change while a hunt runs.
        """
        if key not in self._shared:
            self._shared[key] = compute()
        return cast(T, self._shared[key])


class Detector(Protocol):
    """One detection. Implementations set ``name``, ``tables`` and ``summary``."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    summary: ClassVar[str]

    def run(self, ctx: HuntContext) -> list[Finding]: ...


def registered_detectors() -> list[type[Detector]]:
    """Every detector installed under the entry point group, ordered by name."""
    found = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(found, key=lambda d: d.name)


def default_window(store: Store, hours: float) -> Window:
    """RITA's choice: the ``hours`` ending at the newest timestamp in the store.

    The newest of every traffic table counts, not only ``conn``: a capture's flow row
    carries its first packet's time while its DNS transactions run on after it, and a
    store may hold DNS logs alone.
    """
    newest = None
    for table in ("conn", "dns", "http", "tls"):
        _, last = store.time_bounds(table)
        if last is not None and (newest is None or last > newest):
            newest = last
    if newest is None:
        return Window()
    end = newest + timedelta(microseconds=1)
    return Window(end - timedelta(hours=hours), end)


def findings_table(findings: Sequence[Finding]) -> pa.Table:
    """Findings as rows of the ``findings`` table (the store stamps the scope window)."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": f.id,
            "detector": f.detector,
            "src": f.src,
            "dst": f.dst,
            "fqdn": f.fqdn,
            "score": f.score,
            "severity": f.severity,
            "window_start": f.window_start,
            "window_end": f.window_end,
            "explanation": f.explanation,
            "evidence": json.dumps(f.evidence, sort_keys=True, default=str),
            "suppressed_by": f.suppressed_by,
            "created_at": now,
            "scope": f.scope,
        }
        for f in findings
    ]
    return pa.Table.from_pylist(rows, schema=FINDINGS.arrow_schema)
