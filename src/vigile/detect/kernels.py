"""Segmented NumPy kernels: statistics over many variable-length lists at once.

Detectors score thousands of pairs, each with its own list of timestamps or byte
counts. Looping over pairs in Python costs tens of microseconds per pair; these
kernels instead work on one flat array of values plus ``offsets`` (pair ``i`` owns
``values[offsets[i]:offsets[i + 1]]``, the layout of an Arrow list array), so every
statistic is a handful of whole-array NumPy calls.

Sorting within segments packs the segment number into the high bits of one int64
key and calls :func:`numpy.sort` once (a SIMD sort on x86), which is much faster
than :func:`numpy.lexsort` over two columns.
"""

from __future__ import annotations

import numpy as np

_VALUE_BITS = 40
_VALUE_MAX = (1 << _VALUE_BITS) - 1
_SEG_MAX = (1 << (63 - _VALUE_BITS)) - 1


def segment_ids(offsets: np.ndarray) -> np.ndarray:
    """Segment number of every value.

    >>> segment_ids(np.array([0, 2, 2, 5])).tolist()
    [0, 0, 2, 2, 2]
    """
    lengths = np.diff(offsets)
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """Offsets of segments with these lengths.

    >>> offsets_from_counts(np.array([2, 0, 3])).tolist()
    [0, 2, 2, 5]
    """
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def segmented_sort(values: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Sort non-negative integers within their segments (``seg`` must be non-decreasing).

    Values above 2**40 - 1 are clipped (no traffic counter or interval reaches it).

    >>> segmented_sort(np.array([3, 1, 2, 9, 4]), np.array([0, 0, 0, 1, 1])).tolist()
    [1, 2, 3, 4, 9]
    """
    v = np.clip(values.astype(np.int64, copy=False), 0, _VALUE_MAX)
    if len(seg) and seg[-1] > _SEG_MAX:
        return v[np.lexsort((v, seg))]
    keys = (seg.astype(np.int64) << _VALUE_BITS) | v
    keys.sort()
    return keys & _VALUE_MAX


def segmented_median(sorted_values: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Median of each sorted segment ``sorted_values[starts:starts+lengths]`` (NaN if empty).

    >>> segmented_median(np.array([1, 2, 3, 4, 10, 20]), np.array([0, 4]), np.array([4, 2]))
    array([ 2.5, 15. ])
    """
    out = np.full(len(lengths), np.nan)
    ok = lengths > 0
    s, n = starts[ok], lengths[ok]
    lo = sorted_values[s + (n - 1) // 2].astype(np.float64)
    hi = sorted_values[s + n // 2].astype(np.float64)
    out[ok] = (lo + hi) / 2.0
    return out


def segmented_quartiles(sorted_values: np.ndarray, offsets: np.ndarray):
    """Tukey's hinges per segment: the median and the medians of the lower/upper halves.

    The halves exclude the median for odd lengths, as ``stats.Quartile`` in the Go
    package ``montanaflynn/stats`` does (RITA v5 uses it for Bowley skewness).

    >>> q1, q2, q3 = segmented_quartiles(np.array([1, 2, 3, 4, 5, 6, 7]), np.array([0, 7]))
    >>> q1.tolist(), q2.tolist(), q3.tolist()
    ([2.0], [4.0], [6.0])
    """
    starts = offsets[:-1]
    n = np.diff(offsets)
    c1 = n // 2
    c2 = np.where(n % 2 == 0, n // 2, n // 2 + 1)
    q1 = segmented_median(sorted_values, starts, c1)
    q2 = segmented_median(sorted_values, starts, n)
    q3 = segmented_median(sorted_values, starts + c2, n - c2)
    return q1, q2, q3


def segmented_mad(sorted_values: np.ndarray, offsets: np.ndarray, median: np.ndarray):
    """Median absolute deviation about each segment's median (unscaled).

    Works in doubled integers so half-integer medians stay exact.

    >>> v = np.array([1, 2, 3, 4, 100])
    >>> segmented_mad(v, np.array([0, 5]), np.array([3.0])).tolist()
    [1.0]
    """
    seg = segment_ids(offsets)
    dev2 = np.abs(2 * sorted_values.astype(np.int64) - np.rint(2 * median[seg]).astype(np.int64))
    dev2 = segmented_sort(dev2, seg)
    return segmented_median(dev2, offsets[:-1], np.diff(offsets)) / 2.0


def segmented_diff(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Differences between neighbours within each segment, and their offsets.

    >>> d, o = segmented_diff(np.array([1, 4, 9, 5, 6]), np.array([0, 3, 5]))
    >>> d.tolist(), o.tolist()
    ([3, 5, 1], [0, 2, 3])
    """
    if len(values) == 0:
        return values[:0], np.zeros_like(offsets)
    d = np.diff(values)
    keep = np.ones(len(d), dtype=bool)
    inner = offsets[1:-1]
    keep[inner[(inner > 0) & (inner < len(values))] - 1] = False
    lengths = np.maximum(np.diff(offsets) - 1, 0)
    return d[keep], offsets_from_counts(lengths)


def segmented_filter(values: np.ndarray, offsets: np.ndarray, mask: np.ndarray):
    """Keep ``values[mask]``, returning the new values and offsets.

    >>> v, o = segmented_filter(np.array([1, 2, 3, 4]), np.array([0, 2, 4]),
    ...                         np.array([True, False, True, True]))
    >>> v.tolist(), o.tolist()
    ([1, 3, 4], [0, 1, 3])
    """
    seg = segment_ids(offsets)
    counts = np.bincount(seg[mask], minlength=len(offsets) - 1)
    return values[mask], offsets_from_counts(counts)


def segmented_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of each segment (0 for empty ones).

    >>> segmented_sum(np.array([1, 2, 3]), np.array([0, 2, 2, 3])).tolist()
    [3.0, 0.0, 3.0]
    """
    return np.bincount(segment_ids(offsets), weights=values, minlength=len(offsets) - 1)
