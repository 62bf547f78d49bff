"""The beacon score as whole-array NumPy passes: the reference for the compiled loops.

This is how :mod:`vigile.detect.periodicity` computed the score before it became three
compiled loops; ``test_periodicity_kernels.py`` checks that both give the same numbers
to the bit. Kept in the tests only (no doctest: the product module carries those).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from vigile.detect.kernels import (
    offsets_from_counts,
    segment_ids,
    segmented_diff,
)
from vigile.detect.periodicity import (
    BAND,
    BYTES_WEIGHT,
    GAP_CREDIT,
    MAX_BURST_GAP_MS,
    MIN_CHECKINS,
    NULL_MARGIN,
    NULL_MARGIN_SHORT,
    NULL_ON_SHARE,
    PeriodicityScores,
)


def _checkins(ts_ms: np.ndarray, orig_bytes: np.ndarray, offsets: np.ndarray):
    """Collapse bursts: return check-in times, bytes per check-in and their offsets."""
    n = np.diff(offsets)
    first = ts_ms[np.minimum(offsets[:-1], max(len(ts_ms) - 1, 0))] if len(ts_ms) else n
    last = ts_ms[np.maximum(offsets[1:] - 1, 0)] if len(ts_ms) else n
    mean_interval = (last - first) / np.maximum(n - 1, 1)
    gap = np.minimum(MAX_BURST_GAP_MS, 0.2 * mean_interval)
    seg = segment_ids(offsets)
    starts = np.ones(len(ts_ms), dtype=bool)
    if len(ts_ms) > 1:
        starts[1:] = (seg[1:] != seg[:-1]) | (np.diff(ts_ms) > gap[seg[1:]])
    checkin_id = np.cumsum(starts) - 1
    per_checkin_bytes = np.bincount(checkin_id, weights=orig_bytes.astype(np.float64))
    counts = np.bincount(seg[starts], minlength=len(offsets) - 1)
    return ts_ms[starts], per_checkin_bytes, offsets_from_counts(counts)


def _mode_start(d: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """A first period estimate without sorting: the densest half-octave of intervals.

    Intervals are binned by ``log2`` in half-octave bins per pair (one ``bincount``);
    the estimate is the mean log of the densest bin and its two neighbours.
    """
    bins = 128
    logd = np.log2(np.maximum(d, 1).astype(np.float64))
    b = np.clip((2 * logd).astype(np.int64), 0, bins - 1)
    hist = np.bincount(seg * bins + b, minlength=n * bins).reshape(n, bins)
    sums = np.bincount(seg * bins + b, weights=logd, minlength=n * bins).reshape(n, bins)
    best = hist.argmax(axis=1)
    rows = np.arange(n)
    count = np.zeros(n)
    total = np.zeros(n)
    for k in (-1, 0, 1):
        j = np.clip(best + k, 0, bins - 1)
        keep = (k == 0) | (j != best)
        count += np.where(keep, hist[rows, j], 0)
        total += np.where(keep, sums[rows, j], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.exp2(total / np.maximum(count, 1)), np.nan)


def _band_mean(d: np.ndarray, seg: np.ndarray, n: int, period: np.ndarray) -> np.ndarray:
    """Mean of the intervals within ``[0.5, 1.75] x period`` (unchanged where none are)."""
    p = period[seg]
    band = (d >= 0.5 * p) & (d <= 1.75 * p)
    total = np.bincount(seg[band], weights=d[band].astype(np.float64), minlength=n)
    count = np.bincount(seg[band], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), period)


def _poisson_share(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Probability that an exponential interval with mean ``P`` lies in ``[lo, hi] x P``."""
    return np.exp(-lo) - np.exp(-hi)


def _p_value(
    d: np.ndarray, seg: np.ndarray, p_each: np.ndarray, n_d: np.ndarray, jitter: np.ndarray
) -> np.ndarray:
    """Larger p-value of the two binomial tests against Poisson (see the module doc)."""
    w = np.clip(1.5 * jitter + 0.05, 0.05, BAND)
    w_each = w[seg]
    tight = np.bincount(seg[np.abs(d - p_each) <= w_each * p_each], minlength=len(n_d))
    short = np.bincount(seg[d < (1 - w_each) * p_each], minlength=len(n_d))
    p_on = np.minimum(NULL_MARGIN * _poisson_share(1 - w, 1 + w), NULL_ON_SHARE)
    q_short = NULL_MARGIN_SHORT * _poisson_share(np.zeros_like(w), 1 - w)
    return np.maximum(binom.sf(tight - 1, n_d, p_on), binom.cdf(short, n_d, q_short))


def periodicity_scores(
    ts_ms: np.ndarray, orig_bytes: np.ndarray, offsets: np.ndarray
) -> PeriodicityScores:
    """Score every pair's connection times (milliseconds, sorted within each pair)."""
    conns = np.diff(offsets)
    times, cbytes, c_off = _checkins(ts_ms, orig_bytes, offsets)
    checkins = np.diff(c_off)
    d_sorted, d_off = segmented_diff(times, c_off)  # not sorted: no statistic needs order
    d_seg = segment_ids(d_off)
    n_d = np.diff(d_off)
    period = _mode_start(d_sorted, d_seg, len(n_d))
    for _ in range(3):
        period = _band_mean(d_sorted, d_seg, len(n_d), period)
    period = np.where(period > 0, period, np.nan)

    p_each = period[d_seg]
    on = np.abs(d_sorted - p_each) <= BAND * p_each
    gaps = d_sorted > (1 + BAND) * p_each
    n_on = np.bincount(d_seg[on], minlength=len(n_d))
    with np.errstate(invalid="ignore"):
        missed_each = np.where(gaps, np.rint(d_sorted / p_each) - 1, 0.0)
    missed = np.bincount(d_seg, weights=missed_each, minlength=len(n_d))

    on_n = np.maximum(n_on, 1)
    on_x = d_sorted[on].astype(np.float64)
    on_mean = np.bincount(d_seg[on], weights=on_x, minlength=len(n_d)) / on_n
    on_var = np.bincount(d_seg[on], weights=on_x**2, minlength=len(n_d)) / on_n - on_mean**2
    on_min = np.full(len(n_d), np.inf)
    on_max = np.full(len(n_d), -np.inf)
    np.minimum.at(on_min, d_seg[on], on_x)
    np.maximum.at(on_max, d_seg[on], on_x)
    with np.errstate(invalid="ignore", divide="ignore"):
        jitter = np.sqrt(3 * np.maximum(on_var, 0)) / period
        jitter = np.clip(np.nan_to_num(jitter, nan=1.0), 0.0, 1.0)
        n_gaps = np.bincount(d_seg[gaps], minlength=len(n_d))
        on_share = np.where(n_d > 0, n_on / np.maximum(n_d - GAP_CREDIT * n_gaps, 1), 0.0)
    p_value = _p_value(d_sorted, d_seg, p_each, n_d, np.nan_to_num(jitter, nan=1.0))
    timing = on_share * (1 - p_value)

    c_seg = segment_ids(c_off)
    c_n = np.maximum(checkins, 1)
    b_mean = np.bincount(c_seg, weights=cbytes, minlength=len(checkins)) / c_n
    b_var = np.bincount(c_seg, weights=cbytes**2, minlength=len(checkins)) / c_n - b_mean**2
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
