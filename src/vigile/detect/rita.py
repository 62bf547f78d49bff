"""RITA v5's beacon score, re-implemented over many pairs at once (parity mode).

Source of truth: activecm/rita v5, ``analysis/beacons.go`` (``getTimestampScore``,
``getDataSizeScore``, ``calculateBowleySkewness``, ``calculateMedianAbsoluteDeviation``,
``getHistogramScore``, ``getFrequencyCounts``, ``calculateCoefficientOfVariationScore``,
``calculateBimodalFitScore``, ``getDurationScore``, ``getBeaconScore``) and the default
``config.hjson`` (equal weights 0.25; histogram mode sensitivity 0.05; bimodal outlier
removal 1 and minimum 11 hours; duration minimum 6 hours, ideal 12 consecutive hours).
Quartiles are Tukey's hinges as in ``montanaflynn/stats.Quartile``. Every rounding
step of the Go code (``math.Round``/``math.Ceil`` to three decimals) is kept, so the
sub-scores match RITA's to the thousandth.

Inputs per pair: connection start times in whole seconds (sorted), the originator's
IP bytes of each connection, and RITA's beacon window ``[start, end]`` in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigile.detect.kernels import (
    offsets_from_counts,
    segment_ids,
    segmented_diff,
    segmented_filter,
    segmented_mad,
    segmented_median,
    segmented_quartiles,
    segmented_sort,
)

MIN_UNIQUE_TIMESTAMPS = 4
STROBE_CONNECTIONS = 86_400
HIST_BINS = 24
MODE_SENSITIVITY = 0.05
BIMODAL_OUTLIER_REMOVAL = 1
BIMODAL_MIN_HOURS = 11
DUR_MIN_HOURS = 6
DUR_IDEAL_HOURS = 12


def _round3(x: np.ndarray) -> np.ndarray:
    """Go's ``math.Round(x*1000)/1000``: halves round away from zero."""
    return np.sign(x) * np.floor(np.abs(x) * 1000 + 0.5) / 1000


def _ceil3(x: np.ndarray) -> np.ndarray:
    return np.ceil(x * 1000) / 1000


@dataclass
class RitaScores:
    """Per-pair results; ``valid`` is False where RITA would not score the pair."""

    valid: np.ndarray
    score: np.ndarray
    ts_score: np.ndarray
    ds_score: np.ndarray
    dur_score: np.ndarray
    hist_score: np.ndarray
    ts_skew: np.ndarray
    ts_mad: np.ndarray
    ts_median: np.ndarray
    ds_skew: np.ndarray
    ds_mad: np.ndarray
    ds_median: np.ndarray
    hours_seen: np.ndarray
    longest_run: np.ndarray
    coverage: np.ndarray
    consistency: np.ndarray


def _statistical_score(sorted_vals: np.ndarray, offsets: np.ndarray, default_mad: float):
    """``calculateStatisticalScore``: mean of Bowley-skew and MAD scores, rounded."""
    q1, q2, q3 = segmented_quartiles(sorted_vals, offsets)
    den = q3 - q1
    use = (den >= 10) & (q2 != q1) & (q2 != q3)
    skew = np.where(use, (q1 + q3 - 2 * q2) / np.where(use, den, 1.0), 0.0)
    skew_score = 1.0 - np.abs(skew)
    mad = segmented_mad(sorted_vals, offsets, q2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mad_score = np.where(q2 >= 1, (q2 - mad) / q2, default_mad)
    mad_score = np.where((mad_score < 0) | np.isnan(mad_score), 0.0, mad_score)
    return _round3((skew_score + mad_score) / 2.0), skew, mad, q2


def _histogram(ts: np.ndarray, offsets: np.ndarray, start: int, end: int) -> np.ndarray:
    """Connections per bin, RITA's ``computeHistogramBins`` + ``createHistogram``."""
    step = float(end - start) / HIST_BINS
    inner = start + np.arange(1, HIST_BINS) * step
    bins = np.searchsorted(inner, ts.astype(np.float64), side="right")
    seg = segment_ids(offsets)
    n = len(offsets) - 1
    return np.bincount(seg * HIST_BINS + bins, minlength=n * HIST_BINS).reshape(n, HIST_BINS)


def _longest_run(hist: np.ndarray) -> np.ndarray:
    """Longest run of non-empty bins, wrapping from the end to the start."""
    seen = np.concatenate([hist, hist], axis=1) > 0
    idx = np.arange(seen.shape[1])
    last_empty = np.maximum.accumulate(np.where(~seen, idx, -1), axis=1)
    return np.minimum((idx - last_empty).max(axis=1), hist.shape[1])


def _bimodal_fit(hist: np.ndarray, bars: np.ndarray) -> np.ndarray:
    """Share of non-empty bins in the two most common (quantised) heights."""
    n = hist.shape[0]
    largest = hist.max(axis=1)
    bin_size = np.ceil(largest * MODE_SENSITIVITY)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.floor(hist / bin_size[:, None]) * bin_size[:, None]
    q = np.where(hist > 0, q, -1.0)
    q.sort(axis=1)
    counts = np.zeros((n, HIST_BINS), dtype=np.int64)
    # run lengths of equal heights per row: count of each value at its first position
    for j in range(HIST_BINS):
        counts[:, j] = ((q == q[:, j : j + 1]) & (q[:, j : j + 1] >= 0)).sum(axis=1)
        if j:
            counts[:, j] = np.where(q[:, j] == q[:, j - 1], 0, counts[:, j])
    counts.sort(axis=1)
    top2 = counts[:, -1] + counts[:, -2]
    fit = top2 / np.maximum(bars - BIMODAL_OUTLIER_REMOVAL, 1)
    fit = np.where(bars >= BIMODAL_MIN_HOURS, fit, 0.0)
    return np.minimum(_round3(fit), 1.0)


def _hist_score(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = hist.mean(axis=1)
    cv = hist.std(axis=1) / np.where(mean > 0, mean, 1.0)
    cv_score = np.where(cv > 1.0, 0.0, _round3(1.0 - cv))
    bars = (hist > 0).sum(axis=1)
    return np.maximum(np.minimum(cv_score, 1.0), _bimodal_fit(hist, bars)), bars


def rita_scores(
    ts: np.ndarray, orig_bytes: np.ndarray, offsets: np.ndarray, start: int, end: int
) -> RitaScores:
    """Score every pair the way RITA v5 does.

    Args:
        ts: connection start times in whole seconds, sorted within each pair.
        orig_bytes: originator IP bytes per connection, same layout as ``ts``.
        offsets: pair ``i`` owns ``ts[offsets[i]:offsets[i+1]]``.
        start: RITA's ``minTSBeacon`` (newest timestamp minus 24 h, whole seconds).
        end: RITA's ``maxTSBeacon`` (newest timestamp, whole seconds).

    >>> ts = np.arange(0, 86400, 300)
    >>> r = rita_scores(ts, np.full(len(ts), 500), np.array([0, len(ts)]), 0, 86399)
    >>> float(r.score[0]), float(r.ts_score[0]), float(r.hist_score[0])
    (1.0, 1.0, 1.0)
    """
    seg = segment_ids(offsets)
    counts = np.diff(offsets)
    first_of_value = np.ones(len(ts), dtype=bool)
    first_of_value[1:] = (ts[1:] != ts[:-1]) | (seg[1:] != seg[:-1])
    unique = np.bincount(seg[first_of_value], minlength=len(counts))
    valid = (unique >= MIN_UNIQUE_TIMESTAMPS) & (counts < STROBE_CONNECTIONS) & (counts >= 3)

    deltas, d_off = segmented_diff(ts, offsets)
    deltas = segmented_sort(deltas, segment_ids(d_off))
    deltas, d_off = segmented_filter(deltas, d_off, deltas > 0)
    ts_score, ts_skew, ts_mad, ts_median = _statistical_score(deltas, d_off, 1.0)

    sizes = segmented_sort(orig_bytes, seg)
    ds_score, ds_skew, ds_mad, ds_median = _statistical_score(sizes, offsets, 0.0)

    hist = _histogram(ts, offsets, start, end)
    hist_score, bars = _hist_score(hist)
    run = _longest_run(hist)

    first = ts[offsets[:-1].clip(max=max(len(ts) - 1, 0))] if len(ts) else np.zeros(0)
    last = ts[(offsets[1:] - 1).clip(min=0)] if len(ts) else np.zeros(0)
    span = float(end - start)
    coverage = np.minimum(_ceil3((last - first).astype(np.float64) / span), 1.0)
    consistency = np.minimum(_ceil3(run / DUR_IDEAL_HOURS), 1.0)
    enough = bars >= DUR_MIN_HOURS
    coverage, consistency = np.where(enough, coverage, 0.0), np.where(enough, consistency, 0.0)
    dur_score = np.maximum(coverage, consistency)

    score = _round3(0.25 * ts_score + 0.25 * ds_score + 0.25 * dur_score + 0.25 * hist_score)
    return RitaScores(
        valid=valid,
        score=score,
        ts_score=ts_score,
        ds_score=ds_score,
        dur_score=dur_score,
        hist_score=hist_score,
        ts_skew=ts_skew,
        ts_mad=ts_mad,
        ts_median=ts_median,
        ds_skew=ds_skew,
        ds_mad=ds_mad,
        ds_median=ds_median,
        hours_seen=bars,
        longest_run=run,
        coverage=coverage,
        consistency=consistency,
    )


__all__ = ["RitaScores", "offsets_from_counts", "rita_scores", "segmented_median"]
