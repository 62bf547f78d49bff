"""Property tests of the two beacon scores on simulated traffic.

Targets (docs/detections.md): a perfect beacon scores >= 0.95; beacons with +-50 %
uniform jitter and >= 20 check-ins reach 0.7 with recall >= 0.95; Poisson arrivals and
human browsing stay low; slow, sleepy and bursty beacons are still found.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.detect.periodicity import periodicity_scores
from vigile.detect.rita import rita_scores


def _score(t_s: np.ndarray) -> tuple[float, float]:
    ms = np.rint(np.sort(t_s) * 1000).astype(np.int64)
    b = np.full(len(ms), 700)
    own = periodicity_scores(ms, b, np.array([0, len(ms)]))
    s = ms // 1000
    rita = rita_scores(s, b, np.array([0, len(s)]), int(s[0]), int(s[-1]) + 1)
    return float(own.score[0]), float(rita.score[0])


def _beacon(rng, n, period, jitter=0.0, miss=0.0, burst=1):  # type: ignore[no-untyped-def]
    d = period * (1 + rng.uniform(-jitter, jitter, n - 1))
    t = np.concatenate([[1e9], 1e9 + np.cumsum(d)])
    t = t[rng.random(n) >= miss]
    extra = [t + k * rng.uniform(0.1, 1.5, len(t)) for k in range(1, burst)]
    return np.concatenate([t, *extra])


def _human(rng, hours=24.0):  # type: ignore[no-untyped-def]
    """Browsing sessions: Poisson session starts, log-normal think times, page bursts."""
    out, s = [], 1e9
    while s < 1e9 + hours * 3600:
        s += rng.exponential(3 * 3600)
        x = s
        for _ in range(rng.integers(5, 60)):
            x += rng.lognormal(np.log(30), 1.2)
            out.extend(x + rng.uniform(0, 2, rng.integers(1, 6)))
    return np.array(out)


@settings(max_examples=40)
@given(st.integers(30, 7200), st.integers(12, 200))
def test_perfect_beacon_scores_at_least_095(period: int, n: int) -> None:
    own, _ = _score(np.arange(n) * float(period) + 1e9)
    assert own >= 0.95


def test_half_period_uniform_jitter_recall_at_least_095() -> None:
    rng = np.random.default_rng(2016)
    scores = [_score(_beacon(rng, int(rng.integers(20, 80)), 300.0, 0.5))[0] for _ in range(300)]
    assert np.mean(np.array(scores) >= 0.7) >= 0.95


def test_slow_sleepy_and_bursty_beacons() -> None:
    rng = np.random.default_rng(7)
    slow = [_score(_beacon(rng, 72, 3600.0, 0.5))[0] for _ in range(50)]
    bursty = [_score(_beacon(rng, 60, 600.0, 0.3, burst=3))[0] for _ in range(50)]
    laptop = []
    for _ in range(50):
        t = _beacon(rng, 200, 300.0, 0.3)
        laptop.append(_score(t[(t < t[60]) | (t > t[60] + 8 * 3600)])[0])
    assert np.mean(np.array(slow) >= 0.7) >= 0.95
    assert np.mean(np.array(bursty) >= 0.7) >= 0.95
    assert np.mean(np.array(laptop) >= 0.7) >= 0.95


def test_poisson_and_human_browsing_score_low() -> None:
    rng = np.random.default_rng(1966)
    poisson = np.array([_score(1e9 + np.cumsum(rng.exponential(300, 50)))[0] for _ in range(200)])
    human = np.array([_score(_human(rng))[0] for _ in range(60)])
    assert np.median(poisson) < 0.1 and np.quantile(poisson, 0.95) < 0.3
    assert np.median(human) < 0.1 and human.max() < 0.3


def test_rita_misses_jitter_that_vigile_catches() -> None:
    rng = np.random.default_rng(5)
    pairs = [_score(_beacon(rng, 100, 300.0, 0.5)) for _ in range(30)]
    own = np.array([p[0] for p in pairs])
    rita_ts_blind = np.array([p[1] for p in pairs])
    assert own.mean() > rita_ts_blind.mean()
