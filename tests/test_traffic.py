"""Shared pieces of the server-side detectors: time buckets in the store, robust baselines."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.detect.traffic import robust_baseline
from vigile.schema import CONN, conform
from vigile.store import Agg, SourceRecord, SourceSummary
from vigile.store.duckdb import DuckDBStore

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_time_series_floors_to_multiples_from_the_epoch() -> None:
    store = DuckDBStore(":memory:")
    times = [T0 + timedelta(minutes=m) for m in (5, 50, 70, 130)]
    batch = conform(
        CONN,
        {
            "ts": pa.array(times, CONN.arrow_schema.field("ts").type),
            "src": pa.array(["a", "a", "a", "b"]),
            "dst": pa.array(["x"] * 4),
            "orig_ip_bytes": pa.array([1, 2, 4, 8], pa.int64()),
            "open": pa.array([False] * 4),
            "source_id": pa.array([1] * 4, pa.int64()),
        },
        4,
    )
    with store.source_writer(SourceRecord(1, "t", "h", 0, "test")) as w:
        w.append("conn", batch)
        w.finish(SourceSummary())
    rows = store.time_series(
        "conn", timedelta(hours=1), [Agg("sum", "orig_ip_bytes", "b")], keys=["src"]
    ).to_pylist()
    got = sorted((r["src"], r["bucket"].hour, int(r["b"])) for r in rows)
    assert got == [("a", 10, 3), ("a", 11, 4), ("b", 12, 8)]
    store.close()


@settings(max_examples=200)
@given(
    st.lists(st.floats(1e3, 1e6), min_size=8, max_size=60),
    st.floats(50, 1000),
)
def test_one_earlier_burst_raises_the_mean_rule_not_the_median_rule(
    normal: list[float], burst_factor: float
) -> None:
    """Why exfil uses median/MAD: a single earlier burst inflates mean + 3σ (Splunk's
    rule) so much that an equal second burst passes unseen; the median does not move."""
    burst = max(normal) * burst_factor
    history = [*normal, burst]
    mean_rule = statistics.mean(history) + 3 * statistics.pstdev(history)
    base = robust_baseline(history)
    assert base.median <= max(normal)
    assert base.z(burst) >= 3  # the second burst still stands out
    assert mean_rule > base.median + 3 * max(base.sigma, 0.01 * base.median, 1.0)
