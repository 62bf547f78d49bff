"""Segmented kernels against plain per-list NumPy, and RITA's statistics on known cases."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.detect.kernels import (
    offsets_from_counts,
    segment_ids,
    segmented_diff,
    segmented_mad,
    segmented_median,
    segmented_quartiles,
    segmented_sort,
)
from vigile.detect.rita import rita_scores

lists = st.lists(st.lists(st.integers(0, 10**6), min_size=0, max_size=12), min_size=1, max_size=8)


def _flat(groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([v for g in groups for v in g], dtype=np.int64)
    return values, offsets_from_counts(np.array([len(g) for g in groups]))


@settings(max_examples=200)
@given(lists)
def test_sort_median_mad_match_numpy(groups: list[list[int]]) -> None:
    values, offsets = _flat(groups)
    s = segmented_sort(values, segment_ids(offsets))
    med = segmented_median(s, offsets[:-1], np.diff(offsets))
    mad = segmented_mad(s, offsets, np.nan_to_num(med))
    for i, g in enumerate(groups):
        assert s[offsets[i] : offsets[i + 1]].tolist() == sorted(g)
        if g:
            assert med[i] == np.median(g)
            assert mad[i] == np.median(np.abs(np.array(g) - np.median(g)))
        else:
            assert np.isnan(med[i])


@settings(max_examples=200)
@given(lists)
def test_diff_matches_numpy(groups: list[list[int]]) -> None:
    values, offsets = _flat(groups)
    d, d_off = segmented_diff(values, offsets)
    for i, g in enumerate(groups):
        assert d[d_off[i] : d_off[i + 1]].tolist() == np.diff(g).tolist()


def test_quartiles_are_tukey_hinges_like_montanaflynn_stats() -> None:
    # Even length: halves split in the middle; odd length: the median is left out.
    values, offsets = _flat([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9]])
    q1, q2, q3 = segmented_quartiles(values, offsets)
    assert q1.tolist() == [2.5, 2.5]
    assert q2.tolist() == [4.5, 5.0]
    assert q3.tolist() == [6.5, 7.5]


def test_rita_skips_pairs_with_fewer_than_four_distinct_seconds() -> None:
    ts = np.array([0, 0, 300, 600, 100, 400, 700, 1000])
    b = np.full(len(ts), 100)
    r = rita_scores(ts, b, np.array([0, 4, 8]), 0, 86_400)
    assert r.valid.tolist() == [False, True]


def test_rita_bowley_skew_needs_an_iqr_of_ten() -> None:
    # Intervals 100, 100, 100, 104, 108: IQR 8 < 10, so skew counts as 0 (score 1).
    ts = np.cumsum([0, 100, 100, 100, 104, 108])
    r = rita_scores(ts, np.full(6, 60), np.array([0, 6]), 0, 86_400)
    assert r.ts_skew[0] == 0.0
