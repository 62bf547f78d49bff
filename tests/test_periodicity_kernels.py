"""The compiled C2 kernels against plain NumPy: the same numbers, to the bit.

* vigile's periodicity score (three compiled loops) against its whole-array NumPy
  formulation (``periodicity_reference.py``);
* the pair grouping (packed sort + one compiled pass) against ``numpy.lexsort``;
* IP pairs read through on-disk partitions against one scan of the whole window.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from periodicity_reference import periodicity_scores as reference_scores
from vigile.config import Config
from vigile.detect import HuntContext, default_window, pairs
from vigile.detect.kernels import group_sorted_rows, offsets_from_counts
from vigile.detect.periodicity import periodicity_scores
from vigile.schema import CONN, TS, conform
from vigile.store import SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore


def _pair_times(n: int, kind: int, rng: np.random.Generator) -> np.ndarray:
    if kind == 0:  # Poisson-like
        t = rng.integers(0, 10**7, n)
    elif kind == 1:  # jittered beacon with bursts of a few connections
        t = np.arange(n) * 60_000 + rng.integers(-25_000, 25_000, n)
        t = np.concatenate([t, t[: n // 3] + rng.integers(1, 3_000, n // 3)])
    else:  # many equal timestamps
        t = rng.integers(0, 30, n)
    return np.sort(t).astype(np.int64)


@settings(max_examples=150)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=12),
    st.integers(0, 2),
    st.integers(0, 2**32 - 1),
)
def test_compiled_periodicity_equals_the_numpy_formulation(
    counts: list[int], kind: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    per_pair = [_pair_times(n, kind, rng) for n in counts]
    ts = np.concatenate(per_pair)
    offsets = offsets_from_counts(np.array([len(t) for t in per_pair]))
    orig_bytes = rng.integers(0, 10**6, len(ts))
    got = periodicity_scores(ts, orig_bytes, offsets)
    want = reference_scores(ts, orig_bytes, offsets)
    for name in want.__dataclass_fields__:
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape, name
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


@settings(max_examples=150)
@given(st.integers(1, 400), st.integers(1, 20), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_grouping_equals_a_lexsort(n: int, groups: int, min_rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n)
    ts = rng.integers(0, [5, 10**6][seed % 2], n)
    if seed % 3 == 0:  # ascending runs, as a parallel scan returns rows
        ts = np.sort(ts)
        ts = np.concatenate([ts[n // 3 :], ts[: n // 3]])
    values, flags = rng.integers(0, 1000, n), rng.random(n) < 0.5
    row_bits = max((n - 1).bit_length(), 1)
    key = np.sort((group << row_bits) | np.arange(n))
    out_ts, out_values, offsets, firsts, flagged = group_sorted_rows(
        key, row_bits, ts, values, flags, min_rows
    )
    order = np.lexsort((np.arange(n), ts, group))  # stable: ties keep row order
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, n])
    busy = sizes >= min_rows
    kept = order[np.repeat(busy, sizes)]
    assert out_ts.tolist() == ts[kept].tolist()
    assert out_values.tolist() == values[kept].tolist()
    assert offsets.tolist() == offsets_from_counts(sizes[busy]).tolist()
    assert firsts.tolist() == order[starts[busy]].tolist()
    want = [int(flags[kept[a:b]].sum()) for a, b in itertools.pairwise(offsets)]
    assert flagged.tolist() == want


def _store(tmp_path, rows: int = 6_000) -> DuckDBStore:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    t0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    src = rng.integers(0, 40, rows)
    dst = (src * 7 + rng.integers(0, 6, rows)) % 50
    ts = np.sort(t0 + rng.random(rows) * 86_400)
    cols = {
        "ts": pa.array((ts * 1e6).astype(np.int64)).cast(TS),
        "src": pa.array([f"10.0.0.{s}" for s in src]),
        "dst": pa.array([f"198.18.0.{d}" for d in dst]),
        "dst_port": pa.array(np.where(rng.random(rows) < 0.1, None, 443).tolist(), pa.int32()),
        "proto": pa.array(rng.choice(["tcp", "udp"], rows).tolist()),
        "orig_ip_bytes": pa.array(rng.integers(40, 5000, rows)),
        "resp_bytes": pa.array(np.where(rng.random(rows) < 0.3, 0, 100).tolist()),
        "open": pa.array(np.zeros(rows, dtype=bool)),
        "source_id": pa.array(np.ones(rows, dtype=np.int64)),
    }
    store = DuckDBStore(tmp_path / "pairs.duckdb")
    with store.source_writer(SourceRecord(1, "t", "t" * 64, 0, "simulated")) as w:
        w.append("conn", conform(CONN, cols, rows))
        w.finish(SourceSummary(log_type="conn", rows={"conn": rows}))
    return store


def _by_pair(found: list[pairs.PairLists]) -> dict[tuple[str, str], tuple]:  # type: ignore[type-arg]
    out = {}
    for p in found:
        for i, key in enumerate(p.keys.to_pylist()):
            lo, hi = p.offsets[i], p.offsets[i + 1]
            out[(key["src"], key["dst"])] = (
                key,
                p.ts_us[lo:hi].tolist(),
                p.orig_bytes[lo:hi].tolist(),
            )
    return out


def test_partitions_on_disk_give_the_pairs_of_one_scan(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    ctx = HuntContext(store, Config(), default_window(store, 24))
    win = pairs.scoring_window(ctx)
    assert win is not None
    whole = _by_pair(list(pairs.ip_pairs(store, win, None)))
    monkeypatch.setattr(pairs, "PARTITION_ROWS", 700)
    split = list(pairs.ip_pairs(store, win, None))
    assert len(split) == 9
    assert _by_pair(split) == whole
    assert len(whole) > 100
