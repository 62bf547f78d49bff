"""vigile's own beacon score: a jitter-tolerant test of periodic check-ins.

RITA's timing score (Bowley skew and MAD of raw intervals) falls apart when an
implant randomises its sleep (Cobalt Strike's ``jitter``, Sliver's ``--jitter``),
when a laptop sleeps and misses check-ins, or when each check-in opens several
connections. This score models the traffic as a *renewal process* and tests it
against the Poisson null hypothesis of unrelated, memoryless connections:

1. **Check-ins.** Connections closer than the burst gap
   (``min(5 s, 0.2 x the mean interval)``) are one check-in, so bursts of several
   connections per check-in count once.
2. **Period.** ``P`` starts at the densest half-octave of the intervals between
   check-ins (a log-scale histogram per pair) and is refined three times as the mean
   of the intervals within ``[0.5, 1.75] x P`` (the mean is the efficient estimator
   under uniform jitter); missed check-ins (intervals near ``2P``, ``3P``) fall
   outside that band and do not pull it up. Nothing is sorted, so the whole score
   is a few linear passes over the data.
3. **On-period share.** An interval is on period when it lies in ``[0.4P, 1.6P]``:
   uniform jitter of up to +-50 % always does. Longer intervals are gaps (missed
   check-ins, ``round(d/P) - 1`` of them), shorter ones are off-rhythm. The share is
   ``on / (intervals - 0.5 x gaps)``: a gap is half excused, as a sleeping laptop or a
   dropped check-in is still consistent with a beacon while an off-rhythm interval
   is not.
4. **Significance.** The tolerance ``w = clip(1.5 x jitter + 0.05, 0.05, 0.6)``
   follows the measured jitter. Under the Poisson null (exponential intervals with
   mean near ``P``) an interval falls within ``P +- wP`` with probability
   ``e^-(1-w) - e^-(1+w)`` and below ``(1-w)P`` with probability ``1 - e^-(1-w)``;
   a beacon jittered by less than ``w`` does the first always and the second never.
   Two one-sided binomial tests against conservative versions of these nulls (the
   first times 1.3, capped at 0.6; the second times 0.6) give ``p`` as the larger of
   their p-values, and the score uses ``1 - p``.
   This is the renewal-process dispersion test of Cox & Lewis, *The Statistical
   Analysis of Series of Events* (1966), ch. 6, applied to folded intervals; it plays
   the role of BAYWATCH's periodogram verification step (Hu et al., DSN 2016)
   without the periodogram's sensitivity to phase drift under random jitter.
5. **Jitter.** ``sqrt(3) x std / P`` of the on-period intervals estimates the
   half-width of uniform jitter (0 for a perfect beacon, 0.5 for +-50 %); the
   standard deviation is the efficient estimator here, the MAD too noisy at 20
   check-ins.

``timing = on_share x (1 - p)``: jitter is reported but not penalised, since a
randomised sleep is a property of the implant, not evidence against a beacon. The
byte regularity ``1 - CV`` (coefficient of variation, capped at 1) of bytes per
check-in can lower the score by at most a fifth: ``score = timing x (0.8 + 0.2 x byte_regularity)``.

Every step is a linear pass per pair. They run as three compiled loops (Numba,
written by hand because no library scores many short series this way): one over the
connections, then per pair a few over its intervals while they sit in the CPU cache,
instead of about forty whole-array NumPy passes with their temporaries. The loops add
in the same order as a whole-array formulation would, so the scores are the same to
the bit. The logarithms and exponentials stay in NumPy (one vectorised call each) for
the same reason: a compiled loop calls another ``log2``, which may differ in the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigile.jit import njit

MIN_CHECKINS = 4
MAX_BURST_GAP_MS = 5_000
BAND = 0.6
GAP_CREDIT = 0.5
NULL_ON_SHARE = 0.6
NULL_MARGIN = 1.3
NULL_MARGIN_SHORT = 0.6
BYTES_WEIGHT = 0.2
_BINS = 128  # half-octave bins of log2(interval in ms): up to 2**64 ms
_GAP_FACTOR = 1 + BAND


@dataclass
class PeriodicityScores:
    """Per-pair results; ``valid`` is False where there are too few check-ins."""

    valid: np.ndarray
    score: np.ndarray
    period_s: np.ndarray
    range_s: np.ndarray
    jitter: np.ndarray
    checkins: np.ndarray
    missed: np.ndarray
    on_share: np.ndarray
    p_value: np.ndarray
    conns_per_checkin: np.ndarray
    bytes_regularity: np.ndarray
    bytes_mean: np.ndarray


@njit(cache=True, nogil=True, aot=["(int64[::1], int64[::1], int64[::1], float64)"])
def _checkin_intervals(ts_ms, orig_bytes, offsets, max_gap):
    """Collapse bursts into check-ins; intervals between check-ins and bytes per check-in.

    Connections closer than ``min(max_gap, 0.2 x mean interval)`` are one check-in.
    Returns the intervals, their offsets, check-ins per pair, and the sum and sum of
    squares of bytes per check-in per pair.
    """
    n_pairs = len(offsets) - 1
    d = np.empty(max(len(ts_ms) - 1, 0), np.int64)
    d_off = np.zeros(n_pairs + 1, np.int64)
    checkins = np.zeros(n_pairs, np.int64)
    b_sum = np.zeros(n_pairs)
    b_sq = np.zeros(n_pairs)
    k = 0
    for j in range(n_pairs):
        lo, hi = offsets[j], offsets[j + 1]
        if hi > lo:
            gap = min(max_gap, 0.2 * ((ts_ms[hi - 1] - ts_ms[lo]) / max(hi - lo - 1, 1)))
            last = ts_ms[lo]
            burst = float(orig_bytes[lo])
            n = 1
            for i in range(lo + 1, hi):
                if ts_ms[i] - ts_ms[i - 1] > gap:
                    d[k] = ts_ms[i] - last
                    k += 1
                    last = ts_ms[i]
                    b_sum[j] += burst
                    b_sq[j] += burst * burst
                    burst = float(orig_bytes[i])
                    n += 1
                else:
                    burst += float(orig_bytes[i])
            b_sum[j] += burst
            b_sq[j] += burst * burst
            checkins[j] = n
        d_off[j + 1] = k
    return d[:k], d_off, checkins, b_sum, b_sq


@njit(cache=True, nogil=True, aot=["(float64[::1], int64[::1])"])
def _densest_bins(logd, d_off):
    """Per pair: count and sum of ``log2`` intervals in the densest half-octave ±1 bin."""
    n_pairs = len(d_off) - 1
    count = np.zeros(n_pairs)
    total = np.zeros(n_pairs)
    hist = np.zeros(_BINS, np.int64)
    sums = np.zeros(_BINS)
    for j in range(n_pairs):
        lo, hi = d_off[j], d_off[j + 1]
        for i in range(lo, hi):
            b = min(max(int(2.0 * logd[i]), 0), _BINS - 1)
            hist[b] += 1
            sums[b] += logd[i]
        best = 0
        for b in range(1, _BINS):
            if hist[b] > hist[best]:
                best = b
        c, t = 0.0, 0.0
        for k in range(-1, 2):
            b = min(max(best + k, 0), _BINS - 1)
            if k == 0 or b != best:
                c += hist[b]
                t += sums[b]
        count[j], total[j] = c, t
        for i in range(lo, hi):  # clear only the bins this pair touched
            b = min(max(int(2.0 * logd[i]), 0), _BINS - 1)
            hist[b] = 0
            sums[b] = 0.0
    return count, total


@njit(cache=True, nogil=True, aot=["(int64[::1], int64[::1], float64[::1])"])
def _interval_stats(d, d_off, start):
    """Refine the period, then count on-period, gap, tight and short intervals per pair."""
    n_pairs = len(d_off) - 1
    period = np.full(n_pairs, np.nan)
    n_on = np.zeros(n_pairs, np.int64)
    n_gaps = np.zeros(n_pairs, np.int64)
    missed = np.zeros(n_pairs)
    on_min = np.full(n_pairs, np.inf)
    on_max = np.full(n_pairs, -np.inf)
    jitter = np.ones(n_pairs)
    tight = np.zeros(n_pairs, np.int64)
    short = np.zeros(n_pairs, np.int64)
    for j in range(n_pairs):
        lo, hi = d_off[j], d_off[j + 1]
        p = start[j]
        for _ in range(3):  # the mean of the intervals within [0.5, 1.75] x P
            total, count = 0.0, 0
            for i in range(lo, hi):
                if d[i] >= 0.5 * p and d[i] <= 1.75 * p:
                    total += d[i]
                    count += 1
            if count > 0:
                p = total / count
        if not p > 0:
            continue
        period[j] = p
        on, gaps, miss, total, squares, lo_x, hi_x = 0, 0, 0.0, 0.0, 0.0, np.inf, -np.inf
        for i in range(lo, hi):
            x = float(d[i])
            if abs(x - p) <= BAND * p:
                on += 1
                total += x
                squares += x * x
                lo_x = min(lo_x, x)
                hi_x = max(hi_x, x)
            if x > _GAP_FACTOR * p:
                gaps += 1
                miss += np.rint(x / p) - 1
        n_on[j], n_gaps[j], missed[j], on_min[j], on_max[j] = on, gaps, miss, lo_x, hi_x
        mean = total / max(on, 1)
        var = squares / max(on, 1) - mean * mean
        jit = np.sqrt(3 * max(var, 0.0)) / p
        jitter[j] = 1.0 if np.isnan(jit) else min(max(jit, 0.0), 1.0)
        w = min(max(1.5 * jitter[j] + 0.05, 0.05), BAND)
        near, below = 0, 0
        for i in range(lo, hi):
            near += abs(d[i] - p) <= w * p
            below += d[i] < (1 - w) * p
        tight[j], short[j] = near, below
    return period, n_on, n_gaps, missed, on_min, on_max, jitter, tight, short


def _poisson_share(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Probability that an exponential interval with mean ``P`` lies in ``[lo, hi] x P``."""
    return np.exp(-lo) - np.exp(-hi)


def _p_value(tight: np.ndarray, short: np.ndarray, n_d: np.ndarray, jitter: np.ndarray):
    """Larger p-value of the two binomial tests against Poisson (see the module doc)."""
    # Imported here, not with the module: scipy.stats takes 0.65 CPU-s to import, and
    # python -m vigile.jitbuild imports this module only for its kernels.
    from scipy.stats import binom

    w = np.clip(1.5 * jitter + 0.05, 0.05, BAND)
    p_on = np.minimum(NULL_MARGIN * _poisson_share(1 - w, 1 + w), NULL_ON_SHARE)
    q_short = NULL_MARGIN_SHORT * _poisson_share(np.zeros_like(w), 1 - w)
    return np.maximum(binom.sf(tight - 1, n_d, p_on), binom.cdf(short, n_d, q_short))


def periodicity_scores(
    ts_ms: np.ndarray, orig_bytes: np.ndarray, offsets: np.ndarray
) -> PeriodicityScores:
    """Score every pair's connection times (milliseconds, sorted within each pair).

    >>> ts = np.arange(0, 30 * 600_000, 600_000)
    >>> s = periodicity_scores(ts, np.full(len(ts), 900), np.array([0, len(ts)]))
    >>> round(float(s.score[0]), 3), float(s.period_s[0]), float(s.jitter[0])
    (1.0, 600.0, 0.0)
    """
    ts_ms = np.ascontiguousarray(ts_ms, dtype=np.int64)
    orig_bytes = np.ascontiguousarray(orig_bytes, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    conns = np.diff(offsets)
    d, d_off, checkins, b_sum, b_sq = _checkin_intervals(
        ts_ms, orig_bytes, offsets, float(MAX_BURST_GAP_MS)
    )
    n_d = np.diff(d_off)
    count, total = _densest_bins(np.log2(np.maximum(d, 1).astype(np.float64)), d_off)
    with np.errstate(invalid="ignore", divide="ignore"):
        start = np.where(count > 0, np.exp2(total / np.maximum(count, 1)), np.nan)
    period, n_on, n_gaps, missed, on_min, on_max, jitter, tight, short = _interval_stats(
        d, d_off, start
    )
    on_share = np.where(n_d > 0, n_on / np.maximum(n_d - GAP_CREDIT * n_gaps, 1), 0.0)
    p_value = _p_value(tight, short, n_d, jitter)
    timing = on_share * (1 - p_value)

    c_n = np.maximum(checkins, 1)
    b_mean = b_sum / c_n
    b_var = b_sq / c_n - b_mean**2
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.sqrt(np.maximum(b_var, 0)) / b_mean
        regularity = np.where(b_mean >= 1, 1 - np.minimum(np.nan_to_num(cv), 1.0), 1.0)
    valid = (checkins >= MIN_CHECKINS) & ~np.isnan(period)
    score = np.where(valid, timing * (1 - BYTES_WEIGHT + BYTES_WEIGHT * regularity), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_checkin = conns / np.maximum(checkins, 1)
    return PeriodicityScores(
        valid=valid,
        score=np.clip(np.nan_to_num(score), 0.0, 1.0),
        period_s=period / 1000.0,
        range_s=np.stack([on_min, on_max], axis=1) / 1000.0,
        jitter=jitter,
        checkins=checkins,
        missed=missed,
        on_share=on_share,
        p_value=p_value,
        conns_per_checkin=per_checkin,
        bytes_regularity=regularity,
        bytes_mean=b_mean,
    )
