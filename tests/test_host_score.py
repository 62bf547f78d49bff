"""Host score: the three best pairs combine, within the top pair's severity band."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vigile.detect import Finding, severity_for
from vigile.detect.score import Pair, _host_finding

W = datetime(2026, 1, 1, tzinfo=UTC)


def _pair(peer: str, score: float) -> Pair:
    return Pair("10.0.0.5", peer, [Finding("beacon", "10.0.0.5", peer, None, score, W, W, "")])


def test_three_low_pairs_make_a_low_host() -> None:
    host = _host_finding("10.0.0.5", [_pair(f"192.0.2.{i}", 0.444) for i in range(3)], W, W)
    assert host.score == pytest.approx(0.499) and host.severity == "low"


def test_lower_pairs_order_hosts_within_a_band() -> None:
    alone = _host_finding("10.0.0.5", [_pair("192.0.2.1", 0.6)], W, W)
    more = _host_finding("10.0.0.5", [_pair("192.0.2.1", 0.6), _pair("192.0.2.2", 0.4)], W, W)
    assert alone.score == pytest.approx(0.6) and 0.6 < more.score < 0.75
    top = _host_finding("10.0.0.5", [_pair("192.0.2.1", 0.95), _pair("192.0.2.2", 0.9)], W, W)
    assert top.score == pytest.approx(1 - 0.05 * (1 - 0.9 / 4))


@example([0.4995, 0.4995])
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_a_host_is_as_severe_as_its_worst_pair(scores: list[float]) -> None:
    pairs = [_pair(f"192.0.2.{i}", s) for i, s in enumerate(scores)]
    host = _host_finding("10.0.0.5", pairs, W, W)
    assert max(scores) - 1e-9 <= host.score <= 1.0
    assert severity_for(host.score) == severity_for(max(scores))
