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

from vigile.jit import njit

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


@njit(cache=True, nogil=True)
def _time_order(ts, lo, hi, scratch):
    """Stable permutation that sorts ``ts[lo:hi]``: in ``scratch[k]``, ``k`` returned.

    A natural merge sort: the ascending runs are merged pairwise, so the few runs a
    parallel scan leaves in a pair's rows cost a linear pass or two, not a full sort.
    """
    m = hi - lo
    starts = scratch[2]
    runs = 1
    starts[0] = 0
    for i in range(1, m):
        if ts[lo + i] < ts[lo + i - 1]:
            starts[runs] = i
            runs += 1
    starts[runs] = m
    for i in range(m):
        scratch[0, i] = i
    which = 0
    while runs > 1:
        src, dst = scratch[which], scratch[1 - which]
        merged, j = 0, 0
        while j < runs:
            a, b = starts[j], starts[min(j + 1, runs)]
            c = starts[min(j + 2, runs)]
            x, y = a, b
            for k in range(a, c):  # take from the left run on ties: stable
                if y >= c or (x < b and ts[lo + src[x]] <= ts[lo + src[y]]):
                    dst[k] = src[x]
                    x += 1
                else:
                    dst[k] = src[y]
                    y += 1
            starts[merged] = a
            merged += 1
            j += 2
        starts[merged] = m
        runs = merged
        which = 1 - which
    return which


@njit(cache=True, nogil=True)
def _sort_by_time(ts, values, flags, rows, lo, hi, scratch):
    """Stable sort of ``[lo, hi)`` of the four arrays by ``ts``, unless already in order."""
    for i in range(lo + 1, hi):
        if ts[i] < ts[i - 1]:
            break
    else:
        return
    m = hi - lo
    which = _time_order(ts, lo, hi, scratch)
    perm, stage = scratch[which], scratch[1 - which]
    for arr in (ts, values, rows):
        for k in range(m):
            stage[k] = arr[lo + perm[k]]
        arr[lo:hi] = stage[:m]
    for k in range(m):
        stage[k] = flags[lo + perm[k]]
    for k in range(m):
        flags[lo + k] = stage[k] != 0


@njit(
    cache=True,
    nogil=True,
    aot=[
        "(int64[::1], int64, Array(int64, 1, 'C', readonly=True),"
        " Array(int64, 1, 'C', readonly=True), boolean[::1], int64)"
    ],
)
def group_sorted_rows(key, row_bits, ts, values, flags, min_rows):
    """Groups from packed sorted keys ``group << row_bits | row``, each in time order.

    A compiled loop (the grouping before it is one SIMD sort; no library does the rest
    in one pass): the rows' ``ts``, ``values`` and ``flags`` are gathered in group
    order, each group is sorted by time (a natural merge sort, see :func:`_time_order`:
    rows mostly come in time order), and groups of
    fewer than ``min_rows`` rows are dropped. Returns ``(ts, values, offsets, firsts,
    flagged)``: per group its earliest row and how many of its rows have ``flags`` set.

    >>> key = np.sort(np.array([0 << 3 | 0, 1 << 3 | 1, 0 << 3 | 2, 0 << 3 | 3]))
    >>> t, v, off, first, flagged = group_sorted_rows(
    ...     key, 3, np.array([30, 5, 10, 20]), np.array([3, 9, 1, 2]),
    ...     np.array([True, True, False, True]), 2)
    >>> t.tolist(), v.tolist(), off.tolist(), first.tolist(), flagged.tolist()
    ([10, 20, 30], [1, 2, 3], [0, 3], [2], [2])
    """
    n = len(key)
    mask = (1 << row_bits) - 1
    out_ts = np.empty(n, np.int64)
    out_values = np.empty(n, np.int64)
    out_flags = np.empty(n, np.bool_)
    rows = np.empty(n, np.int64)
    groups = 0
    for i in range(n):  # independent loads, so the memory system overlaps them
        r = key[i] & mask
        rows[i], out_ts[i], out_values[i], out_flags[i] = r, ts[r], values[r], flags[r]
        if i == 0 or (key[i] >> row_bits) != (key[i - 1] >> row_bits):
            groups += 1
    offsets = np.zeros(groups + 1, np.int64)
    firsts = np.empty(groups, np.int64)
    flagged = np.zeros(groups, np.int64)
    scratch = np.empty((3, 0), np.int64)
    q, o, lo = 0, 0, 0
    for hi in range(1, n + 1):
        if hi < n and (key[hi] >> row_bits) == (key[lo] >> row_bits):
            continue
        m = hi - lo
        if m >= min_rows:
            for i in range(m):  # compact over the dropped groups (o <= lo)
                out_ts[o + i], out_values[o + i] = out_ts[lo + i], out_values[lo + i]
                out_flags[o + i], rows[o + i] = out_flags[lo + i], rows[lo + i]
            if scratch.shape[1] < m + 1:
                scratch = np.empty((3, max(m + 1, 2 * scratch.shape[1])), np.int64)
            _sort_by_time(out_ts, out_values, out_flags, rows, o, o + m, scratch)
            firsts[q] = rows[o]
            for i in range(o, o + m):
                flagged[q] += out_flags[i]
            o += m
            q += 1
            offsets[q] = o
        lo = hi
    return out_ts[:o].copy(), out_values[:o].copy(), offsets[: q + 1], firsts[:q], flagged[:q]


@njit(
    cache=True,
    nogil=True,
    aot=[
        "(Array(int32, 1, 'C', readonly=True), Array(int32, 1, 'C', readonly=True), int64, int64)"
    ],
)
def pack_pair_keys(first, second, n_second, row_bits):
    """Sort keys ``(first * n_second + second) << row_bits | row`` in one pass.

    Written as a compiled loop so the pair codes need no int64 temporaries; the caller
    checks that the codes and row numbers fit in 63 bits.

    >>> pack_pair_keys(np.array([1, 0]), np.array([2, 1]), 3, 1).tolist()
    [10, 3]
    """
    key = np.empty(len(first), np.int64)
    for i in range(len(first)):
        key[i] = ((np.int64(first[i]) * n_second + second[i]) << row_bits) | i
    return key
