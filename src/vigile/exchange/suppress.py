"""Suppressions the admin writes in ``vigile.toml``, applied visibly.

A finding that matches a rule keeps its score and stays in the output, ranked after
the unsuppressed ones, with ``suppressed_by`` naming the rule; it leaves the timeline.
Nothing is dropped. Rules live in the ``[exchange]`` section::

    [[exchange.suppress]]
    detector = "exchange-mailbox-export"   # exact check name, or "*" for any
    contains = "\\\\\\\\nas01\\\\pst\\\\"          # text that must appear in the explanation
    reason = "monthly PST archive job"     # shown as suppressed_by

``contains`` is matched literally and without case; an empty or missing ``contains``
is refused, so a rule cannot silence a whole check by accident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigile.detect import Finding
from vigile.errors import ConfigError


@dataclass(frozen=True)
class SuppressRule:
    """One rule: which check, which text, and why."""

    detector: str
    contains: str
    reason: str

    def matches(self, finding: Finding) -> bool:
        """True when the check matches and the text is in the explanation.

        >>> rule = SuppressRule("*", "nas01", "archive job")
        >>> from datetime import datetime, UTC
        >>> t = datetime(2021, 3, 3, tzinfo=UTC)
        >>> rule.matches(Finding("x", None, None, None, 0.5, t, t, "to \\\\\\\\NAS01\\\\pst"))
        True
        """
        if self.detector not in ("*", finding.detector):
            return False
        return self.contains.lower() in finding.explanation.lower()


def parse_rules(section: Mapping[str, Any]) -> list[SuppressRule]:
    """The ``suppress`` rules of the ``[exchange]`` section, checked."""
    rules = []
    for n, entry in enumerate(section.get("suppress", []), 1):
        where = f"[[exchange.suppress]] rule {n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        contains, reason = str(entry.get("contains", "")), str(entry.get("reason", ""))
        if not contains.strip():
            raise ConfigError(f"{where}: 'contains' must name the text to match")
        if not reason.strip():
            raise ConfigError(f"{where}: 'reason' must say why (it is shown with the finding)")
        rules.append(SuppressRule(str(entry.get("detector", "*")), contains, reason))
    return rules


def apply_rules(findings: Sequence[Finding], rules: Sequence[SuppressRule]) -> int:
    """Mark matching findings ``suppressed_by``; returns how many were marked."""
    marked = 0
    for finding in findings:
        rule = next((r for r in rules if r.matches(finding)), None)
        if rule is not None:
            finding.suppressed_by = f"vigile.toml [[exchange.suppress]]: {rule.reason}"
            marked += 1
    return marked
