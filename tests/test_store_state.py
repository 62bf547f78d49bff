"""The store contract's console additions: time_series and state_writer (DuckDB engine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from vigile.schema import CONN, TS, conform
from vigile.store import Agg, Pred, SourceRecord, SourceSummary, Window
from vigile.store.duckdb import DuckDBStore

T0 = datetime(2024, 4, 19, tzinfo=UTC)  # a multiple of one hour since the Unix epoch


@pytest.fixture
def store() -> DuckDBStore:
    rows = [(0, "a", 1), (1799, "a", 2), (3600, "a", 4), (3601, "b", 8), (7300, "a", 16)]
    batch = conform(
        CONN,
        {
            "ts": pa.array([T0 + timedelta(seconds=s) for s, _, _ in rows], TS),
            "src": pa.array([r[1] for r in rows]),
            "dst": pa.array(["z"] * len(rows)),
            "orig_ip_bytes": pa.array([r[2] for r in rows], pa.int64()),
            "open": pa.array([False] * len(rows)),
            "source_id": pa.array([1] * len(rows), pa.int64()),
        },
        len(rows),
    )
    s = DuckDBStore(":memory:")
    with s.source_writer(SourceRecord(1, "t", "h" * 64, 0, "test")) as w:
        w.append("conn", batch)
        w.finish(SourceSummary(rows={"conn": len(rows)}))
    return s


def test_time_series_buckets_are_epoch_aligned_and_ordered(store: DuckDBStore) -> None:
    out = store.time_series("conn", timedelta(hours=1), [Agg("sum", "orig_ip_bytes", "b")])
    assert [(r["bucket"], int(r["b"])) for r in out.to_pylist()] == [
        (T0, 3),
        (T0 + timedelta(hours=1), 12),
        (T0 + timedelta(hours=2), 16),
    ]
    keyed = store.time_series(
        "conn",
        timedelta(minutes=30),
        [Agg("count", None, "n")],
        window=Window(T0 + timedelta(hours=1)),
        where=[Pred("src", "=", "a")],
        keys=["src"],
    )
    assert [(r["bucket"], r["src"], r["n"]) for r in keyed.to_pylist()] == [
        (T0 + timedelta(hours=1), "a", 1),
        (T0 + timedelta(hours=2), "a", 1),
    ]


def test_state_writer_is_all_or_nothing(store: DuckDBStore) -> None:
    row = {"ts": T0, "username": "u", "action": "allowlist.add", "target": "console:1"}
    with pytest.raises(RuntimeError), store.state_writer() as w:
        w.insert("audit_log", [row])
        raise RuntimeError("interrupted")
    assert store.count("audit_log") == 0
    with store.state_writer() as w:
        w.insert("audit_log", [row, {**row, "target": "console:2"}])
        assert w.update("audit_log", [Pred("target", "=", "console:2")], {"action": "x"}) == 1
        assert w.delete("audit_log", [Pred("target", "=", "console:1")]) == 1
    assert store.scan("audit_log", ["target", "action"]).to_pylist() == [
        {"target": "console:2", "action": "x"}
    ]


def test_state_writer_only_touches_state_tables(store: DuckDBStore) -> None:
    with store.state_writer() as w:
        with pytest.raises(ValueError, match="not a state table"):
            w.delete("conn", [Pred("src", "=", "a")])
        with pytest.raises(ValueError, match="at least one condition"):
            w.delete("audit_log", [])
    assert store.count("conn") == 5
