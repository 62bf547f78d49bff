"""Pair score rules that keep one fact from counting twice (src/vigile/detect/score.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from vigile.detect import Finding
from vigile.detect.score import Pair, _restated

W = datetime(2026, 3, 4, tzinfo=UTC)


def _f(detector: str, score: float, **evidence: object) -> Finding:
    return Finding(detector, "10.0.0.5", "198.51.100.7", None, score, W, W, "", dict(evidence))


def test_modifiers_cannot_lift_a_pair_of_capped_findings_over_the_cap() -> None:
    capped = _f("beacon", 0.45, not_significant={"cap": 0.45, "p_value": 0.2})
    pair = Pair("10.0.0.5", "198.51.100.7", [capped], [("rare destination", 0.15)])
    assert pair.score == 0.45
    with_other = Pair("10.0.0.5", "198.51.100.7", [capped, _f("role_violation", 0.9)])
    with_other.modifiers = [("rare destination", 0.15)]
    assert with_other.cap is None and with_other.score == 1.0


def test_uncapped_findings_keep_their_modifiers() -> None:
    pair = Pair("10.0.0.5", "198.51.100.7", [_f("beacon", 0.4)], [("rare destination", 0.15)])
    assert round(pair.score, 6) == 0.55


def test_a_lone_rare_destination_finding_is_not_restated_by_modifiers() -> None:
    lone = Pair("10.0.0.5", "198.51.100.7", [_f("rare_destination", 0.45)])
    assert _restated("first seen 2026-03-04 06:33 UTC", lone)
    assert _restated("rare destination (2% of 54 hosts)", lone)
    assert not _restated("missing HTTP Host header on 3 of 3 requests", lone)
    both = Pair("10.0.0.5", "198.51.100.7", [_f("rare_destination", 0.6), _f("threat_intel", 0.95)])
    assert not _restated("first seen 2026-03-04 06:33 UTC", both)
