"""Small helpers shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

from pathlib import Path

from vigile.ingest import IngestReport, ingest_paths
from vigile.store.duckdb import DuckDBStore


def ingest(store: DuckDBStore, *paths: Path) -> IngestReport:
    return ingest_paths(store, list(paths))


def table_rows(store: DuckDBStore, table: str, drop: tuple[str, ...] = ()) -> list[dict]:
    data = store.scan(table)
    keep = [c for c in data.column_names if c not in drop]
    rows = data.select(keep).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[c]) for c in keep))
