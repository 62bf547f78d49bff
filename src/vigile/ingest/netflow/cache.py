"""The per-exporter state of a decoder: templates, options and parked data sets."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vigile.ingest.netflow.templates import Template, TimeBase


@dataclass
class _Parked:
    arrived: float
    body: bytes
    base: TimeBase


Key = tuple[str, int, int]  # exporter, observation domain (v9: source id), template id


@dataclass
class TemplateCache:
    """Templates, options and parked data sets, per exporter and observation domain.

    ``max_parked`` bounds the parked sets per template key and ``park_seconds`` their
    age; what is evicted or expires unread is added to ``unknown_template``.
    """

    max_parked: int = 64
    park_seconds: float = 60.0
    templates: dict[Key, Template] = field(default_factory=dict)
    system_init_ms: dict[tuple[str, int], int] = field(default_factory=dict)
    parked: dict[Key, deque[_Parked]] = field(default_factory=dict)
    unknown_template: int = 0

    def learn(self, key: Key, tmpl: Template) -> list[_Parked]:
        """Add or refresh a template; returns the parked sets it can now decode."""
        self.templates[key] = tmpl
        return list(self.parked.pop(key, ()))

    def withdraw(self, key: Key) -> None:
        """Forget one template (RFC 7011 §8.1 withdrawal)."""
        self.templates.pop(key, None)

    def withdraw_all(self, exporter: str, domain: int, options: bool) -> None:
        """Forget every (options) template of an exporter's domain (template id 2 or 3)."""
        for key in [k for k, t in self.templates.items() if k[:2] == (exporter, domain)]:
            if self.templates[key].options == options:
                del self.templates[key]

    def park(self, key: Key, body: bytes, base: TimeBase, now: float) -> None:
        """Keep a data set until its template arrives (bounded)."""
        queue = self.parked.setdefault(key, deque())
        if len(queue) >= self.max_parked:
            queue.popleft()
            self.unknown_template += 1
        queue.append(_Parked(now, body, base))

    def expire(self, now: float) -> int:
        """Drop parked sets older than ``park_seconds``; returns how many."""
        dropped = 0
        for key in list(self.parked):
            queue = self.parked[key]
            while queue and now - queue[0].arrived > self.park_seconds:
                queue.popleft()
                dropped += 1
            if not queue:
                del self.parked[key]
        self.unknown_template += dropped
        return dropped

    @property
    def parked_sets(self) -> int:
        return sum(len(q) for q in self.parked.values())
