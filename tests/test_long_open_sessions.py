"""long_connection and sessions still open: a snapshot counts only if the session was
last seen inside the scoring window (its start plus its latest duration reaches it)."""

from __future__ import annotations

from pathlib import Path

from vigile.config import Config
from vigile.detect import HuntContext, default_window
from vigile.detect.long_connection import LongConnectionDetector
from vigile.ingest import ingest_paths
from vigile.store.duckdb import DuckDBStore

FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes "
    "resp_bytes conn_state history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes"
).split()
TYPES = (
    "time string addr port addr port enum string interval count count string string "
    "count count count count"
).split()
END = 1_763_000_000.0  # the newest traffic: the 24 h window ends here


def _log(path: Path, kind: str, rows: list[tuple[float, str, str, str, float]]) -> None:
    head = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        f"#path\t{kind}",
        "#fields\t" + "\t".join(FIELDS),
        "#types\t" + "\t".join(TYPES),
    ]
    lines = [
        f"{ts:.6f}\t{uid}\t{src}\t50000\t{dst}\t22\ttcp\tssh\t{d:.6f}\t300\t1200\tSF\t"
        "ShADadFf\t6\t620\t6\t1520"
        for ts, uid, src, dst, d in rows
    ]
    path.write_text("\n".join([*head, *lines, "#close\t2025-01-01-00-00-00"]) + "\n")


def test_a_session_last_seen_before_the_window_is_not_counted(tmp_path: Path) -> None:
    two_years = 2 * 365 * 86_400
    _log(tmp_path / "conn.log", "conn", [(END - 60, "CNOW", "10.0.0.5", "10.0.0.9", 1.0)])
    _log(
        tmp_path / "open_conn.log",
        "open_conn",
        [
            # Opened two years ago, snapshots for 5.5 h, then the sensor stopped.
            (END - two_years, "CSTALE", "203.0.113.7", "10.0.0.22", 3_600.0),
            (END - two_years, "CSTALE", "203.0.113.7", "10.0.0.22", 20_000.0),
            # Opened three days ago and still seen an hour before the window's end.
            (END - 3 * 86_400, "CLIVE", "198.51.100.4", "10.0.0.22", 255_600.0),
        ],
    )
    store = DuckDBStore(":memory:")
    try:
        ingest_paths(store, [tmp_path])
        ctx = HuntContext(store, Config(), default_window(store, 24))
        found = {f.src: f for f in LongConnectionDetector().run(ctx)}
    finally:
        store.close()
    assert set(found) == {"198.51.100.4"}
    assert found["198.51.100.4"].evidence["open_connections"] == 1
