"""The store contract, exercised on the DuckDB engine."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import pyarrow as pa
import pytest

from vigile.errors import InputError, Location
from vigile.ingest import ingest_file, registered_readers
from vigile.ingest.base import Sink, SourceFile
from vigile.schema import CONN, TS, conform
from vigile.store import Agg, FindingScope, Pred, SourceRecord, SourceSummary, Window
from vigile.store.duckdb import DuckDBStore

T0 = datetime(2024, 4, 19, tzinfo=UTC)


def _conn_batch(rows: list[tuple[int, str, str, int]]) -> pa.RecordBatch:
    n = len(rows)
    return conform(
        CONN,
        {
            "ts": pa.array([T0 + timedelta(seconds=s) for s, *_ in rows], TS),
            "src": pa.array([r[1] for r in rows]),
            "dst": pa.array([r[2] for r in rows]),
            "orig_ip_bytes": pa.array([r[3] for r in rows], pa.int64()),
            "open": pa.array([False] * n),
            "source_id": pa.array([1] * n, pa.int64()),
        },
        n,
    )


def _store_with_rows(rows) -> DuckDBStore:
    store = DuckDBStore(":memory:")
    record = SourceRecord(1, "test", "h" * 64, 0, "test")
    with store.source_writer(record) as w:
        w.append("conn", _conn_batch(rows))
        w.finish(SourceSummary(rows={"conn": len(rows)}))
    return store


def test_group_lists_are_ordered_by_time():
    store = _store_with_rows(
        [(30, "a", "b", 3), (10, "a", "b", 1), (20, "a", "b", 2), (5, "c", "b", 9)]
    )
    out = store.group(
        "conn",
        ["src", "dst"],
        [
            Agg("count", None, "n"),
            Agg("list", "orig_ip_bytes", "sizes"),
            Agg("sum", "orig_ip_bytes", "total"),
        ],
        order_by=["src"],
    )
    assert out.to_pylist() == [
        {"src": "a", "dst": "b", "n": 3, "sizes": [1, 2, 3], "total": 6},
        {"src": "c", "dst": "b", "n": 1, "sizes": [9], "total": 9},
    ]


def test_window_and_predicates():
    store = _store_with_rows([(0, "a", "b", 1), (100, "a", "c", 2), (200, "d", "c", 3)])
    w = Window(T0 + timedelta(seconds=50), T0 + timedelta(seconds=200))
    assert store.count("conn", w) == 1
    got = store.scan("conn", ["src"], where=[Pred("dst", "in", ["c"]), Pred("src", "!=", "a")])
    assert got.column("src").to_pylist() == ["d"]
    assert store.scan("conn", ["src"], where=[Pred("dst", "in", [])]).num_rows == 0
    lo, hi = store.time_bounds("conn")
    assert (lo, hi) == (T0, T0 + timedelta(seconds=200))
    with pytest.raises(ValueError):
        store.scan("conn", ["nope"])


def test_interrupted_source_leaves_no_rows(tmp_path: Path):
    """A reader dying midway (Ctrl-C here) leaves nothing of that file behind."""

    class DyingReader:
        name = "dying"
        position_unit = "line"
        description = "test reader that stops after one batch"

        @classmethod
        def sniff(cls, head: bytes) -> bool:
            return True

        def read(self, source: SourceFile, sink: Sink) -> None:
            batch = _conn_batch([(1, "a", "b", 1)])
            sink.emit("conn", {n: batch.column(n) for n in ("ts", "src", "dst", "open")}, 1)
            raise KeyboardInterrupt

    path = tmp_path / "x.log"
    path.write_text("anything")
    store = DuckDBStore(tmp_path / "v.duckdb")
    with pytest.raises(KeyboardInterrupt):
        ingest_file(store, path, [DyingReader])
    assert store.count("conn") == 0 and store.count("sources") == 0
    store.close()
    reopened = DuckDBStore(tmp_path / "v.duckdb")
    assert reopened.count("conn") == 0


def test_fatal_input_error_rolls_back(tmp_path: Path):
    class FailingReader:
        name = "failing"
        position_unit = "line"
        description = "test reader that finds a fatal problem"

        @classmethod
        def sniff(cls, head: bytes) -> bool:
            return True

        def read(self, source: SourceFile, sink: Sink) -> None:
            batch = _conn_batch([(1, "a", "b", 1)])
            sink.emit("conn", {n: batch.column(n) for n in ("ts", "src", "dst", "open")}, 1)
            raise InputError(Location(source.path, line=7), "boom")

    path = tmp_path / "x.log"
    path.write_text("anything")
    store = DuckDBStore(":memory:")
    store._con.execute("SET threads = 3")
    result = ingest_file(store, path, [FailingReader])
    assert result.status == "refused" and result.message == f"{path}:7: boom"
    assert store.count("conn") == 0
    # The writer runs DuckDB on one thread; queries get their threads back, error or not.
    assert store._con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]


def test_replace_findings_is_idempotent():
    from vigile.detect import Finding, findings_table

    store = DuckDBStore(":memory:")
    f = Finding("beacon", "10.0.0.1", "1.2.3.4", None, 0.8, T0, T0 + timedelta(days=1), "x")
    store.replace_findings(["beacon"], findings_table([f]), FindingScope())
    store.replace_findings(["beacon"], findings_table([f]), FindingScope())
    assert store.count("findings") == 1
    store.replace_findings(["beacon"], findings_table([]), FindingScope())
    assert store.count("findings") == 0


def test_locked_store_is_a_clear_error(tmp_path: Path):
    """DuckDB allows one writer per file; a second one gets a StoreError, not a traceback."""
    import subprocess
    import sys

    from vigile.errors import StoreError

    db = tmp_path / "v.duckdb"
    DuckDBStore(db).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(StoreError, match="cannot open store"):
            DuckDBStore(db)
    finally:
        holder.communicate("")


def test_integer_sums_keep_an_integer_type():
    store = _store_with_rows([(0, "a", "b", 5), (1, "a", "b", 7)])
    out = store.group("conn", ["src"], [Agg("sum", "orig_ip_bytes", "total")])
    assert out.schema.field("total").type == pa.int64()
    assert out.column("total").to_pylist() == [12]


def test_coded_scans_return_dictionary_columns_over_the_given_values():
    store = _store_with_rows([(30, "a", "b", 3), (10, "a", "x", 1), (20, "c", "b", 2)])
    values = store.group("conn", ["src"], [], order_by=["src"]).column("src")
    codes = {"src": values, "dst": pa.array(["b"])}  # "x" is missing: it comes back null
    table = store.scan("conn", ["src", "dst", "orig_ip_bytes"], codes=codes)
    batches = list(store.scan_batches("conn", ["src", "dst", "orig_ip_bytes"], codes=codes))
    for got in (table, pa.Table.from_batches(batches)):
        assert got.schema.field("src").type == pa.dictionary(pa.int32(), pa.string())
        assert all(c.dictionary.equals(values.combine_chunks()) for c in got.column("src").chunks)
        rows = zip(*(got.column(c).to_pylist() for c in got.column_names), strict=True)
        assert sorted(rows, key=lambda r: r[2]) == [("a", None, 1), ("c", "b", 2), ("a", "b", 3)]
    indices = table.column("src").combine_chunks().indices.to_pylist()
    assert sorted(indices) == [0, 0, 1]


def test_store_with_sha256_hashes_is_upgraded_and_still_recognised(tmp_path: Path):
    """A store whose ``sources`` kept SHA-256 hashes (before BLAKE3) is renamed in place,
    and a file it already holds is still a duplicate, so re-ingesting adds nothing."""
    capture = Path(__file__).parent / "golden" / "pcap" / "gre.pcap"
    old = tmp_path / "old.duckdb"
    store = DuckDBStore(old)
    assert ingest_file(store, capture, registered_readers()).status == "ingested"
    rows = store.count("conn")
    # What an older vigile wrote: a ``sha256`` column holding the bare SHA-256 hex.
    store._con.execute("ALTER TABLE sources RENAME COLUMN content_hash TO sha256")
    sha = hashlib.sha256(capture.read_bytes()).hexdigest()
    store._con.execute("UPDATE sources SET sha256 = ?", [sha])
    store.close()

    upgraded = DuckDBStore(old)
    assert upgraded.source_hashes(capture.stat().st_size) == {f"sha256:{sha}"}
    again = ingest_file(upgraded, capture, registered_readers())
    assert again.status == "duplicate" and upgraded.count("conn") == rows

    other = tmp_path / "copy.pcap"
    other.write_bytes(capture.read_bytes() + b"\0" * 16)  # different content: a new input
    assert ingest_file(upgraded, other, registered_readers()).status != "duplicate"
    hashes = upgraded.scan("sources", ["content_hash"]).column(0).to_pylist()
    assert sorted(h.split(":")[0] for h in hashes) == ["blake3", "sha256"]
    upgraded.close()


def test_content_hash_is_blake3_of_the_bytes(tmp_path: Path):
    path = tmp_path / "x.log"
    path.write_bytes(b"some bytes\n" * 1000)
    source = SourceFile.probe(path)
    assert source.content_hash == "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()
    empty = tmp_path / "empty.log"
    empty.touch()
    assert SourceFile.probe(empty).content_hash == "blake3:" + blake3.blake3(b"").hexdigest()
