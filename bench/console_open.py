"""What opening the store per request costs the console: ``python -m bench.console_open``.

The console holds the store only while it answers a request (vigile.web.access), so
every request pays an open and a close. This times, side by side in one process on a
temporary store of ``--rows`` connections (bench.console's store):

* the opens themselves (median of ``--runs``): DuckDB's bare connect, read-only and
  read-write, against ``:memory:`` (DuckDB's own start-up); the store's read-only open;
  its read-write open with the schema work (what every open cost before) and without;
* the overview and a small API answer through the whole application (in-process test
  client, log-in cookie, per-request open), against the same reads on a store held open.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from fastapi.testclient import TestClient

from bench.common import machine, peak_rss_mb
from bench.console import build
from vigile.config import Config
from vigile.store.duckdb import DuckDBStore
from vigile.web import queries
from vigile.web.access import StoreAccess
from vigile.web.app import create_app
from vigile.web.auth import add_user, find_session, start_session

PASSWORD = "bench password 123"


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm: imports, first-use caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _closing(open_: Callable[[], Any]) -> Callable[[], None]:
    return lambda: open_().close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.duckdb"
        build(path, args.rows)
        store = DuckDBStore(path)
        add_user(store, "admin", PASSWORD)
        token, _ = start_session(store, "admin")
        store.close()
        print(f"machine: {machine()}")
        print(f"store of {args.rows:,} connections; median of {runs} runs, milliseconds")
        p = str(path)
        opens: list[tuple[str, Callable[[], None]]] = [
            ("duckdb.connect(':memory:')", _closing(lambda: duckdb.connect(":memory:"))),
            ("duckdb.connect(file, read_only)", _closing(lambda: duckdb.connect(p, True))),
            ("duckdb.connect(file) read-write", _closing(lambda: duckdb.connect(p))),
            ("store, read-only", _closing(lambda: DuckDBStore(p, read_only=True))),
            ("store, read-write + schema work", _closing(lambda: DuckDBStore(p))),
            ("store, read-write, prepared", _closing(lambda: DuckDBStore(p, prepare=False))),
        ]
        for name, fn in opens:
            print(f"{name:<44} {median_ms(fn, runs):>8.1f}")

        cfg = Config()
        held = DuckDBStore(p, read_only=True)
        held_me = median_ms(lambda: find_session(held, token), runs)
        held_overview = median_ms(lambda: queries.overview(held, cfg), max(5, runs // 4))
        held.close()
        app = create_app(StoreAccess(p), cfg)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            client.cookies.set("vigile_session", token)

            def get(url: str) -> Callable[[], None]:
                def fn() -> None:
                    assert client.get(url).status_code == 200

                return fn

            me = median_ms(get("/api/me"), runs)
            overview = median_ms(get("/api/overview"), max(5, runs // 4))
        print(f"{'session lookup on a held store':<44} {held_me:>8.1f}")
        print(f"{'GET /api/me, store opened for it':<44} {me:>8.1f}")
        print(f"{'overview reads on a held store':<44} {held_overview:>8.1f}")
        print(f"{'GET /api/overview, store opened for it':<44} {overview:>8.1f}")
    print(f"peak memory {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
