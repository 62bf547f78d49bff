"""The embedded store: one DuckDB file, Arrow batches in and out, one writer.

DuckDB allows one read-write process per file, so every write funnels through
:class:`DuckDBStore` (see the contract in :mod:`vigile.store`). Only this module
writes DuckDB SQL; detectors use the engine-neutral query vocabulary.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from vigile.errors import StoreError
from vigile.schema import (
    ALL_TABLES,
    FINDINGS,
    SOURCES,
    STATE_TABLES,
    TRAFFIC_TABLES,
    Table,
)
from vigile.store import Agg, FindingScope, Pred, SourceRecord, SourceSummary, Window

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.list_(pa.float64()): "DOUBLE[]",
}
_AGG_SQL = {
    "count": "count({c})",
    "sum": "sum({c})",
    "min": "min({c})",
    "max": "max({c})",
    "count_distinct": "count(DISTINCT {c})",
    "list": "list({c} ORDER BY ts)",
    "any": "any_value({c})",
}


def _ddl(table: Table) -> str:
    cols = ", ".join(
        f'"{c.name}" {_SQL_TYPES[c.type]}{"" if c.nullable else " NOT NULL"}' for c in table.columns
    )
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" ({cols})'


def _agg_expr(table: str, agg: Agg) -> str:
    """SQL for one aggregate. DuckDB sums integers into HUGEINT (Arrow decimal128); the
    contract promises the column's own type, so integer sums come back as BIGINT."""
    col = "*" if agg.column is None else _ident(table, agg.column)
    expr = _AGG_SQL[agg.op].format(c=col)
    column_type = (
        None if agg.column is None else ALL_TABLES[table].arrow_schema.field(agg.column).type
    )
    if agg.op == "sum" and column_type is not None and pa.types.is_integer(column_type):
        expr = f"CAST({expr} AS BIGINT)"
    return expr


def _ident(table: str, column: str) -> str:
    if column not in ALL_TABLES[table].column_names:
        raise ValueError(f"unknown column {table}.{column}")
    return f'"{column}"'


#: Above this many values an ``in`` filter is joined against a registered Arrow table
#: instead of being spelled out as parameters.
_INLINE_IN_MAX = 256


def _where(
    table: str, window: Window | None, where: Sequence[Pred], big: dict[str, pa.Table] | None = None
) -> tuple[str, list[Any]]:
    """SQL for a window and predicates; large ``in`` lists go into ``big`` as tables."""
    clauses: list[str] = []
    params: list[Any] = []
    if window is not None and window.start is not None:
        clauses.append("ts >= ?")
        params.append(window.start)
    if window is not None and window.end is not None:
        clauses.append("ts < ?")
        params.append(window.end)
    for p in where:
        col = _ident(table, p.column)
        if p.op == "hash mod":
            k, i = (int(x) for x in p.value)
            clauses.append(f"hash({col}) % {k} = {i}")
        elif p.op in ("is null", "is not null"):
            clauses.append(f"{col} {p.op.upper()}")
        elif p.op in ("in", "not in"):
            if len(p.value) == 0:
                clauses.append("FALSE" if p.op == "in" else "TRUE")
                continue
            if big is not None and len(p.value) > _INLINE_IN_MAX:
                name = f"__vigile_in_{len(big)}"
                big[name] = pa.table({"v": pa.array(p.value)})
                clauses.append(f"{col} {p.op.upper()} (SELECT v FROM {name})")
                continue
            values = p.value.to_pylist() if hasattr(p.value, "to_pylist") else list(p.value)
            marks = ", ".join("?" * len(values))
            clauses.append(f"{col} {p.op.upper()} ({marks})")
            params.extend(values)
        else:
            clauses.append(f"{col} {p.op} ?")
            params.append(p.value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class _DuckDBSourceWriter:
    def __init__(self, con: duckdb.DuckDBPyConnection, record: SourceRecord) -> None:
        self._con = con
        self._record = record
        self._rejects: list[tuple[int, int, str, str, str | None]] = []

    def append(self, table: str, batch: pa.RecordBatch) -> None:
        if table not in TRAFFIC_TABLES:
            raise ValueError(f"not a traffic table: {table}")
        self._con.register("__vigile_batch", batch)
        try:
            self._con.execute(f'INSERT INTO "{table}" SELECT * FROM __vigile_batch')
        finally:
            self._con.unregister("__vigile_batch")

    def reject(self, position: int, unit: str, reason: str, raw: str | None) -> None:
        self._rejects.append((self._record.source_id, position, unit, reason, raw))
        if len(self._rejects) >= 10_000:
            self._flush_rejects()

    def _flush_rejects(self) -> None:
        if self._rejects:
            self._con.executemany("INSERT INTO rejects VALUES (?, ?, ?, ?, ?)", self._rejects)
            self._rejects.clear()

    def finish(self, summary: SourceSummary) -> None:
        self._flush_rejects()
        r = self._record
        row: list[Any] = [r.source_id, r.path, r.content_hash, r.size_bytes, r.format]
        row.append(summary.log_type)
        row += [datetime.now(UTC), summary.first_ts, summary.last_ts]
        row += [summary.rows.get(t, 0) for t in TRAFFIC_TABLES]
        row += [summary.bad_rows, summary.first_error, "\n".join(summary.notices) or None]
        marks = ", ".join("?" * len(SOURCES.columns))
        self._con.execute(f"INSERT INTO sources VALUES ({marks})", row)


class _DuckDBStateWriter:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    @staticmethod
    def _state(table: str) -> Table:
        if table not in STATE_TABLES:
            raise ValueError(f"not a state table: {table}")
        return STATE_TABLES[table]

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        spec = self._state(table)
        marks = ", ".join("?" * len(spec.columns))
        values = [[row.get(c) for c in spec.column_names] for row in rows]
        if values:
            self._con.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)

    def update(self, table: str, where: Sequence[Pred], values: Mapping[str, Any]) -> int:
        self._state(table)
        sets = ", ".join(f"{_ident(table, c)} = ?" for c in values)
        clause, params = _where(table, None, where)
        row = self._con.execute(
            f'UPDATE "{table}" SET {sets}{clause} RETURNING 1', [*values.values(), *params]
        ).fetchall()
        return len(row)

    def delete(self, table: str, where: Sequence[Pred]) -> int:
        self._state(table)
        if not where:
            raise ValueError("delete needs at least one condition")
        clause, params = _where(table, None, where)
        return len(
            self._con.execute(f'DELETE FROM "{table}"{clause} RETURNING 1', params).fetchall()
        )

    def set_suppressed(self, assignments: Mapping[str, str | None]) -> None:
        if assignments:
            self._con.executemany(
                "UPDATE findings SET suppressed_by = ? WHERE id = ?",
                [[entry, fid] for fid, entry in assignments.items()],
            )

    def replace_findings(
        self, detectors: Sequence[str], batch: pa.Table, scope: FindingScope
    ) -> None:
        n = batch.num_rows
        batch = batch.select(FINDINGS.arrow_schema.names)
        stamped = {
            "scope": pa.array([scope.source] * n, pa.string()),
            "scope_start": pa.array(
                [scope.window.start] * n, FINDINGS.arrow_schema.field("scope_start").type
            ),
            "scope_end": pa.array(
                [scope.window.end] * n, FINDINGS.arrow_schema.field("scope_end").type
            ),
        }
        for name, values in stamped.items():
            batch = batch.set_column(batch.schema.get_field_index(name), name, values)
        stale = self._stale_findings(detectors, scope, batch) + batch.column("id").to_pylist()
        if stale:
            self._con.execute(
                "DELETE FROM findings WHERE id IN (SELECT unnest(?::VARCHAR[]))", [stale]
            )
        if n:
            with _registered(self._con, {"__vigile_findings": batch}):
                cols = ", ".join(f'"{c}"' for c in batch.schema.names)
                self._con.execute(
                    f"INSERT INTO findings ({cols}) SELECT {cols} FROM __vigile_findings"
                )

    def _stale_findings(
        self, detectors: Sequence[str], scope: FindingScope, batch: pa.Table
    ) -> list[str]:
        """Ids of the stored findings of ``detectors`` that a run over ``scope`` producing
        ``batch`` replaces: :meth:`FindingScope.replaces` and, for the subjects in
        ``batch``, :meth:`FindingScope.supersedes` decide, so every engine applies the
        same rule (the ids of ``batch`` itself are the caller's)."""
        if not detectors:
            return []
        subject = ["detector", "src", "dst", "fqdn"]
        reported = set(zip(*(batch.column(c).to_pylist() for c in subject), strict=True))
        rows = self._con.sql(
            "SELECT id, detector, src, dst, fqdn, window_start, window_end, scope, scope_start, "
            "scope_end FROM findings "
            "WHERE detector IN (SELECT unnest(?::VARCHAR[])) "
            "AND (scope IS NOT DISTINCT FROM ? OR scope IS NULL)",
            params=[list(detectors), scope.source],
        ).to_arrow_table()
        stale = []
        for r in rows.to_pylist():
            run = (r["scope"], r["scope_start"], r["scope_end"])
            found = Window(r["window_start"], r["window_end"])
            if scope.replaces(*run, found) or (
                (r["detector"], r["src"], r["dst"], r["fqdn"]) in reported
                and scope.supersedes(*run)
            ):
                stale.append(r["id"])
        return stale


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, big: dict[str, pa.Table]) -> Iterator[None]:
    """Arrow tables visible to ``con``'s SQL under the given names for the block."""
    for name, values in big.items():
        con.register(name, values)
    try:
        yield
    finally:
        for name in big:
            con.unregister(name)


def _connect(
    location: str, read_only: bool, wait: float, on_wait: Callable[[str], None] | None
) -> duckdb.DuckDBPyConnection:
    deadline, told, pause = time.monotonic() + wait, False, 0.05
    while True:
        try:
            return duckdb.connect(location, read_only=read_only)
        except duckdb.IOException as e:
            held = "Conflicting lock" in str(e)
            if not held or time.monotonic() >= deadline:
                why = _lock_holder(str(e)) if held else str(e)
                raise StoreError(f"cannot open store {location}: {why}") from None
            if not told and on_wait is not None:
                on_wait(_lock_holder(str(e)))
                told = True
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        except duckdb.Error as e:
            raise StoreError(f"cannot open store {location}: {e}") from None


#: One lock per store file, held while a connection of this process prepares it (see
#: :meth:`DuckDBStore.__init__`); DuckDB names an open file by its absolute path too.
_PREPARING: dict[str, threading.Lock] = {}
_PREPARING_GUARD = threading.Lock()
#: How long a preparation that keeps losing to another connection's uncommitted
#: creation is re-checked before the open fails.
PREPARE_PATIENCE = 2.0


def _prepare(con: duckdb.DuckDBPyConnection, location: str) -> None:
    """Bring the store to the current schema (:func:`_upgrade`, then any missing table),
    one connection of this process at a time per file.

    The lock covers every opener that goes through :class:`DuckDBStore`. A conflict with
    a connection made some other way is taken as "someone else is creating it": the
    whole preparation (idempotent) runs again until it finds what the other made, for
    at most :data:`PREPARE_PATIENCE` seconds. Any other failure is a :class:`StoreError`.
    """
    key = location if location == ":memory:" else os.path.realpath(location)
    with _PREPARING_GUARD:
        lock = _PREPARING.setdefault(key, threading.Lock())
    with lock:
        deadline, pause = time.monotonic() + PREPARE_PATIENCE, 0.01
        while True:
            try:
                _upgrade(con)
                for table in ALL_TABLES.values():
                    con.execute(_ddl(table))
                return
            except duckdb.Error as e:
                _rollback(con)
                lost = isinstance(e, duckdb.TransactionException) and "conflict" in str(e)
                if not lost or time.monotonic() >= deadline:
                    why = str(e).strip().splitlines()[0]
                    raise StoreError(f"cannot prepare store {location}: {why}") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """End a transaction an upgrade step left open when it failed."""
    with suppress(duckdb.Error):  # none open: the failed statement ran on its own
        con.execute("ROLLBACK")


def _upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a store written by an older vigile to the current schema.

    The columns are asked of ``duckdb_columns()`` once, not of
    ``information_schema.columns``: the view costs 25 ms of every store's opening, the
    table function 3 ms.
    """
    have: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE table_name IN ('sources', 'findings', 'conn')"
    ).fetchall():
        have.setdefault(table, set()).add(column)
    # ``sources.sha256`` became ``content_hash`` (one transaction).
    if "sha256" in have.get("sources", set()):
        con.execute("BEGIN TRANSACTION")
        con.execute("ALTER TABLE sources RENAME COLUMN sha256 TO content_hash")
        con.execute("UPDATE sources SET content_hash = 'sha256:' || content_hash")
        con.execute("COMMIT")
    # ``findings`` gained its scope columns: nullable and last in
    # :data:`vigile.schema.FINDINGS`, so appending them gives the table the schema's
    # column order; old rows keep a null scope.
    if "findings" in have:
        for col in FINDINGS.columns:
            if col.name not in have["findings"]:
                con.execute(f'ALTER TABLE findings ADD COLUMN "{col.name}" {_SQL_TYPES[col.type]}')
    # ``conn`` gained ``orig_payload``/``resp_payload``, nullable and last as well. Rows
    # with payload counts (Zeek, pcap) get them as ingest gives them (count > 0); flow
    # rows keep null (unknown): their inference belongs to the ingest layer
    # (vigile.ingest.payload) and pairs the records of one batch as it is read.
    if "conn" in have and "resp_payload" not in have["conn"]:
        con.execute("BEGIN TRANSACTION")
        for side in ("orig", "resp"):
            con.execute(f'ALTER TABLE conn ADD COLUMN "{side}_payload" BOOLEAN')
            con.execute(f"UPDATE conn SET {side}_payload = {side}_bytes > 0")
        con.execute("COMMIT")


def _payload_view(con: duckdb.DuckDBPyConnection) -> None:
    """A read-only open of a store written before ``conn`` had its payload columns
    (it cannot be upgraded in place): a temporary view named ``conn`` adds them,
    derived as :func:`_upgrade` would fill them, so readers see the current schema."""
    columns = {
        c
        for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'conn' "
            "AND schema_name = 'main' AND NOT internal"
        ).fetchall()
    }
    if not columns or "resp_payload" in columns:
        return
    (catalog,) = con.execute("SELECT current_database()").fetchone() or ("",)
    con.execute(
        "CREATE TEMP VIEW conn AS SELECT *, orig_bytes > 0 AS orig_payload, "
        f'resp_bytes > 0 AS resp_payload FROM "{catalog}".main.conn'
    )


def _lock_holder(message: str) -> str:
    """DuckDB's lock message, cut to the part that names the holding process."""
    m = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", message)
    if m is None:
        return message
    return f"in use by another process ({Path(m.group(1)).name}, PID {m.group(2)})"


class DuckDBStore:
    """A store in one DuckDB file (or ``:memory:``)."""

    def __init__(
        self,
        path: str | Path = "vigile.duckdb",
        *,
        read_only: bool = False,
        memory_limit: str = "1500MB",
        wait: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
        prepare: bool = True,
    ) -> None:
        """Open (or create) the store.

        DuckDB lets one process write a file and, while it does, no other process open
        it at all. ``wait`` is how many seconds to keep retrying while another process
        holds the file (``on_wait`` is told once, with DuckDB's message naming that
        process); after that the open fails with a :class:`StoreError`.

        A read-write open brings the file to the current schema (legacy column names,
        missing tables: about 20 ms). ``prepare=False`` skips that, for a process that
        reopens a store it has already prepared (the console opens it per request).

        Several openers of one new store at once are safe. Within a process (the
        collector's batch writer and a command or test reading beside it), every
        connection to a file shares one DuckDB database, and two of them creating the
        same table conflict ("write-write conflict on create"): :func:`_prepare`
        prepares one file at a time per process, and an opener that finds the tables
        made by another sees them as made. Across processes DuckDB's file lock already
        serialises them: the second opener waits (``wait``) for the first to close and
        then finds the tables made, or fails with a :class:`StoreError` naming the
        holder. A store that cannot be brought to the schema (a file that is no store,
        an upgrade that fails) is a :class:`StoreError`, never retried away.
        """
        self.location = str(path)
        if self.location != ":memory:" and not read_only:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(self.location, read_only, wait, on_wait)
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute("SET enable_progress_bar = false")
        self._con.execute(f"SET memory_limit = '{memory_limit}'")
        if prepare and not read_only:
            try:
                _prepare(self._con, self.location)
            except BaseException:
                self._con.close()
                raise
        elif read_only:
            _payload_view(self._con)

    # -- writes -------------------------------------------------------------------------
    def source_hashes(self, size_bytes: int) -> set[str]:
        rows = self._con.execute(
            "SELECT content_hash FROM sources WHERE size_bytes = ?", [size_bytes]
        ).fetchall()
        return {h for (h,) in rows}

    @contextmanager
    def source_writer(self, record: SourceRecord) -> Iterator[_DuckDBSourceWriter]:
        # One DuckDB thread while a file is written: its inserts are batches of at most
        # 65,536 rows, too small to split, and a second thread's scheduling only costs.
        # On 2 cores: a 2 M-line conn.log 6.1 CPU-s (5.6 s wall) against 6.8 (6.2), a
        # 1.35 M-packet capture 2.2 against 2.3 CPU-s. Queries keep every thread.
        (threads,) = self._con.execute("SELECT current_setting('threads')").fetchall()[0]
        self._con.execute("SET threads = 1")
        try:
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield _DuckDBSourceWriter(self._con, record)
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
        finally:
            self._con.execute(f"SET threads = {int(threads)}")

    def replace_findings(
        self, detectors: Sequence[str], batch: pa.Table, scope: FindingScope
    ) -> None:
        with self.state_writer() as w:
            w.replace_findings(detectors, batch, scope)

    @contextmanager
    def state_writer(self) -> Iterator[_DuckDBStateWriter]:
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield _DuckDBStateWriter(self._con)
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    # -- reads --------------------------------------------------------------------------
    def _select(self, table: str, columns: Sequence[str] | None) -> str:
        cols = ", ".join(_ident(table, c) for c in columns) if columns else "*"
        return f'SELECT {cols} FROM "{table}"'

    def scan(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        window: Window | None = None,
        where: Sequence[Pred] = (),
        order_by: Sequence[str] = (),
        limit: int | None = None,
        codes: Mapping[str, pa.Array] | None = None,
    ) -> pa.Table:
        big: dict[str, pa.Table] = {}
        clause, params = _where(table, window, where, big)
        sql = self._select(table, columns) + clause
        if codes:
            sql = self._coded_select(table, columns, codes, big) + clause
        if order_by:
            sql += " ORDER BY " + ", ".join(_ident(table, c) for c in order_by)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with _registered(self._con, big):
            result = self._conform(self._con.sql(sql, params=params).to_arrow_table())
        return _as_dictionaries(result, codes) if codes else result

    def _coded_select(
        self,
        table: str,
        columns: Sequence[str] | None,
        codes: Mapping[str, pa.Array],
        big: dict[str, pa.Table],
    ) -> str:
        """``SELECT`` with each coded column replaced by its index in the given values,
        found by a left join on a registered (value, index) table: DuckDB's hash join
        runs on all cores, faster than hashing the strings again in the caller."""
        joins, out = [], []
        for c in columns or ALL_TABLES[table].column_names:
            ident = _ident(table, c)
            if c not in codes:
                out.append(f'"{table}".{ident}')
                continue
            name = f"__vigile_codes_{len(big)}"
            values = _values(codes[c])
            big[name] = pa.table({"__v": values, "__i": np.arange(len(values), dtype=np.int32)})
            joins.append(f' LEFT JOIN {name} ON "{table}".{ident} = {name}.__v')
            out.append(f"{name}.__i AS {ident}")
        return f'SELECT {", ".join(out)} FROM "{table}"' + "".join(joins)

    def scan_batches(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        window: Window | None = None,
        where: Sequence[Pred] = (),
        codes: Mapping[str, pa.Array] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        big: dict[str, pa.Table] = {}
        clause, params = _where(table, window, where, big)
        select = self._coded_select(table, columns, codes, big) if codes else None
        with _registered(self._con, big):
            sql = (select or self._select(table, columns)) + clause
            reader = self._con.sql(sql, params=params)
            for batch in reader.to_arrow_reader(1 << 17):
                yield _as_dictionaries(batch, codes) if codes else batch

    def group(
        self,
        table: str,
        keys: Sequence[str],
        aggs: Sequence[Agg],
        window: Window | None = None,
        where: Sequence[Pred] = (),
        order_by: Sequence[str] = (),
        descending: bool = False,
        limit: int | None = None,
    ) -> pa.Table:
        key_sql = [_ident(table, k) for k in keys]
        agg_sql = []
        for a in aggs:
            agg_sql.append(f'{_agg_expr(table, a)} AS "{a.alias}"')
        big: dict[str, pa.Table] = {}
        clause, params = _where(table, window, where, big)
        sql = f'SELECT {", ".join(key_sql + agg_sql)} FROM "{table}"{clause}'
        if key_sql:
            sql += " GROUP BY " + ", ".join(key_sql)
        if order_by:
            direction = " DESC" if descending else ""
            sql += " ORDER BY " + ", ".join(f'"{c}"{direction}' for c in order_by)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with _registered(self._con, big):
            return self._con.sql(sql, params=params).to_arrow_table()

    def time_series(
        self,
        table: str,
        every: timedelta,
        aggs: Sequence[Agg],
        window: Window | None = None,
        where: Sequence[Pred] = (),
        keys: Sequence[str] = (),
    ) -> pa.Table:
        seconds = every.total_seconds()
        if seconds <= 0:
            raise ValueError("every must be positive")
        # Epoch-aligned buckets (not time_bucket's 2000-01-03 origin) so any engine can agree.
        bucket = f"to_timestamp(floor(epoch(ts) / {seconds!r}) * {seconds!r})"
        key_sql = [_ident(table, k) for k in keys]
        agg_sql = []
        for a in aggs:
            agg_sql.append(f'{_agg_expr(table, a)} AS "{a.alias}"')
        clause, params = _where(table, window, where)
        groups = ", ".join([bucket, *key_sql])
        sql = (
            f'SELECT {bucket} AS bucket, {", ".join(key_sql + agg_sql)} FROM "{table}"{clause}'
            f" GROUP BY {groups} ORDER BY {groups}"
        )
        return self._con.sql(sql, params=params).to_arrow_table()

    def time_bounds(self, table: str) -> tuple[datetime | None, datetime | None]:
        bounds = self._con.sql(f'SELECT min(ts) AS lo, max(ts) AS hi FROM "{table}"')
        row = bounds.to_arrow_table().to_pylist()[0]
        return row["lo"], row["hi"]

    def count(self, table: str, window: Window | None = None) -> int:
        clause, params = _where(table, window, ())
        rows = self._con.execute(f'SELECT count(*) FROM "{table}"{clause}', params)
        return int(rows.fetchall()[0][0])

    def close(self) -> None:
        self._con.close()

    @staticmethod
    def _conform(result: pa.Table) -> pa.Table:
        """DuckDB names list items ``l``; give callers the schema's own list types."""
        fields = []
        for f in result.schema:
            if pa.types.is_list(f.type):
                f = f.with_type(pa.list_(f.type.value_type))
            fields.append(f)
        return result.cast(pa.schema(fields))


def _as_dictionaries(result: Any, codes: Mapping[str, pa.Array]) -> Any:
    """Wrap the int32 index columns of a coded scan (table or batch) as dictionary
    columns, without copying."""
    for c, values in codes.items():
        if c not in result.column_names:
            continue
        values = _values(values)
        col = result.column(c)
        if isinstance(col, pa.ChunkedArray):
            chunks = [pa.DictionaryArray.from_arrays(chunk, values) for chunk in col.chunks]
            typed = pa.chunked_array(chunks, pa.dictionary(pa.int32(), values.type))
        else:
            typed = pa.DictionaryArray.from_arrays(col, values)
        result = result.set_column(result.column_names.index(c), c, typed)
    return result


def _values(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(values)
