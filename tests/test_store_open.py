"""Opening one new store from several places at once: threads of one process (the
collector's batch writer and a reader beside it), another connection, two processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from vigile.errors import StoreError
from vigile.ingest.collector import Collector
from vigile.schema import ALL_TABLES, CONN
from vigile.store import duckdb as duckdb_store
from vigile.store.duckdb import DuckDBStore, _ddl


def _tables(db: Path) -> set[str]:
    store = DuckDBStore(db, read_only=True)
    try:
        rows = store._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    finally:
        store.close()
    return {name for (name,) in rows}


def _open_together(db: Path, openers: int) -> list[str]:
    """``openers`` threads released at one instant, each opening (creating) ``db``;
    what each that failed raised."""
    start = threading.Barrier(openers)
    errors: list[str] = []

    def open_once() -> None:
        start.wait(timeout=10)
        try:
            DuckDBStore(db).close()
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=open_once) for _ in range(openers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_threads_creating_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    # Before the fix, 19 trials in 20 of two threads failed with "write-write conflict
    # on create": one trial of four threads is all but certain to meet it.
    for trial in range(4):
        db = tmp_path / f"t{trial}.duckdb"
        assert _open_together(db, 4) == []
        assert set(ALL_TABLES) <= _tables(db)


def test_collector_and_a_reader_creating_the_store_together(tmp_path: Path) -> None:
    """The collector's first batch and a command reading the store, in one process, both
    opening the store that does not exist yet."""
    for trial in range(3):
        db = tmp_path / f"c{trial}.duckdb"
        start = threading.Barrier(2)

        def open_for_batch(db: Path = db, start: threading.Barrier = start) -> DuckDBStore:
            start.wait(timeout=10)
            return DuckDBStore(db, wait=10)

        collector = Collector(open_for_batch, "127.0.0.1", 0)  # type: ignore[arg-type]
        read: list[int] = []

        def reader(db: Path = db, start: threading.Barrier = start, read: list[int] = read) -> None:
            start.wait(timeout=10)
            store = DuckDBStore(db, wait=10)
            try:
                read.append(store.count("conn"))
            finally:
                store.close()

        thread = threading.Thread(target=reader)
        thread.start()
        collector.stop()
        counters = collector.close()  # the final batch is written, even empty
        thread.join()
        assert read == [0] and counters.batches == 1
        store = DuckDBStore(db, read_only=True)
        assert store.count("sources") == 1  # the final batch's counters
        store.close()


def test_another_connections_creation_is_waited_for(tmp_path: Path) -> None:
    """A connection made outside DuckDBStore creates ``conn`` in a transaction it
    commits a moment later: the open waits for it and finds the table made."""
    db = tmp_path / "v.duckdb"
    other = duckdb.connect(str(db))
    other.execute("BEGIN TRANSACTION")
    other.execute(_ddl(CONN))
    timer = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    timer.start()
    try:
        store = DuckDBStore(db)
        assert store.count("conn") == 0
        store.close()
    finally:
        timer.join()
        other.close()


def test_a_creation_never_committed_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_store, "PREPARE_PATIENCE", 0.3)
    db = tmp_path / "v.duckdb"
    other = duckdb.connect(str(db))
    other.execute("BEGIN TRANSACTION")
    other.execute(_ddl(CONN))
    try:
        with pytest.raises(StoreError) as e:
            DuckDBStore(db)
    finally:
        other.close()
    message = str(e.value)
    assert message.startswith(f"cannot prepare store {db}: ") and "conflict" in message
    assert "\n" not in message


def test_a_store_of_another_shape_is_a_one_line_error_not_retried(tmp_path: Path) -> None:
    """A genuine mismatch (a ``conn`` table the upgrade cannot bring to the schema) is
    not mistaken for a lost race."""
    db = tmp_path / "v.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE conn (x INTEGER)")
    con.close()
    with pytest.raises(StoreError) as e:
        DuckDBStore(db)
    message = str(e.value)
    assert message.startswith(f"cannot prepare store {db}: ") and "\n" not in message
    assert "conflict" not in message


OPEN_AND_HOLD = """
import sys, time
from vigile.store.duckdb import DuckDBStore
sys.stdin.readline()  # both processes start opening when the test says so
store = DuckDBStore(sys.argv[1], wait=20)
print(store.count("conn"), flush=True)
time.sleep(0.3)  # held open a while: the other process must wait for it
store.close()
"""


def test_two_processes_creating_one_store_take_turns(tmp_path: Path) -> None:
    """Across processes DuckDB's file lock lets one open at a time: the second waits
    for the first to close and finds the tables it made."""
    db = tmp_path / "v.duckdb"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_HOLD, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outcomes = [p.communicate(timeout=60) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, outcomes, strict=True)] == [
        (0, "0"),
        (0, "0"),
    ], [err for _, err in outcomes]
    assert set(ALL_TABLES) <= _tables(db)
