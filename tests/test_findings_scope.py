"""Which stored findings a run replaces: its own scope only (Store.replace_findings).

Hunts run for real over simulated Zeek logs (one day, then the next), Exchange
inspections over two of the golden input trees, the console over the resulting store.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import Config
from vigile.detect import Finding, findings_table
from vigile.store import FindingScope, Window
from vigile.store.duckdb import DuckDBStore
from vigile.web.allowlist import add_entry
from vigile.web.app import create_app
from vigile.web.auth import add_user

GOLDEN = Path(__file__).parent / "golden" / "exchange"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
DAY = timedelta(days=1)
BMC = "10.20.250.13"  # the simulated BMC that beacons on day one (ground-truth.csv)


def _run(*args: str, codes: tuple[int, ...] = (0,)) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code in codes, result.output
    return result.output


def _ids(db: Path, where: str = "true") -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute(f"SELECT id FROM findings WHERE {where}").fetchall()]
    finally:
        con.close()


def _finding(detector: str, src: str, start: datetime) -> Finding:
    return Finding(detector, src, "192.0.2.1", None, 0.8, start, start + DAY, "x")


def test_windows_the_run_did_not_cover_are_kept() -> None:
    store = DuckDBStore(":memory:")
    day1, day2 = Window(T0, T0 + DAY), Window(T0 + DAY, T0 + 2 * DAY)
    store.replace_findings(
        ["beacon"], findings_table([_finding("beacon", "a", T0)]), FindingScope(None, day1)
    )
    overlap = Window(T0 + DAY / 2, T0 + DAY * 3 / 2)
    store.replace_findings(["beacon"], findings_table([]), FindingScope(None, overlap))
    assert store.count("findings") == 1, "an overlapping window does not cover day one"
    day2_finding = _finding("beacon", "b", T0 + DAY)
    store.replace_findings(["beacon"], findings_table([day2_finding]), FindingScope(None, day2))
    store.replace_findings(["beacon"], findings_table([day2_finding]), FindingScope(None, day2))
    assert store.count("findings") == 2
    both = Window(T0, T0 + 2 * DAY)
    store.replace_findings(["beacon"], findings_table([]), FindingScope(None, both))
    assert store.count("findings") == 0, "a run whose window covers both replaces both"


def test_same_id_is_one_row_and_other_sources_are_kept() -> None:
    store = DuckDBStore(":memory:")
    f = _finding("beacon", "a", T0)
    store.replace_findings(
        ["beacon"], findings_table([f]), FindingScope(None, Window(T0, T0 + DAY))
    )
    # A shorter window does not cover the stored one, but the same finding is one row.
    short = FindingScope(None, Window(T0, T0 + DAY / 2))
    store.replace_findings(["beacon"], findings_table([f]), short)
    rows = store.scan("findings").to_pylist()
    assert len(rows) == 1 and rows[0]["scope_end"] == T0 + DAY / 2
    other = _finding("beacon", "a", T0)
    other.scope = "exchange:EX02"
    assert other.id != f.id, "the same trace on another source is another finding"
    store.replace_findings(["beacon"], findings_table([other]), FindingScope("exchange:EX02"))
    store.replace_findings(["beacon"], findings_table([]), FindingScope("exchange:EX01"))
    assert sorted(store.scan("findings", ["id"]).column("id").to_pylist()) == sorted(
        [f.id, other.id]
    )


def test_store_from_before_scopes_gains_the_columns_and_keeps_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE findings (id VARCHAR NOT NULL, detector VARCHAR NOT NULL, src VARCHAR, "
        "dst VARCHAR, fqdn VARCHAR, score DOUBLE NOT NULL, severity VARCHAR NOT NULL, "
        "window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ NOT NULL, "
        "explanation VARCHAR NOT NULL, evidence VARCHAR NOT NULL, suppressed_by VARCHAR, "
        "created_at TIMESTAMPTZ NOT NULL)"
    )
    con.execute(
        "INSERT INTO findings VALUES ('old', 'beacon', 'a', NULL, NULL, 0.5, 'medium', "
        "'2026-03-01', '2026-03-02', 'x', '{}', NULL, '2026-03-02')"
    )
    con.close()
    store = DuckDBStore(db)
    try:
        day = FindingScope(None, Window(T0, T0 + DAY))
        store.replace_findings(["exfil"], findings_table([_finding("exfil", "b", T0)]), day)
        rows = {r["id"]: r for r in store.scan("findings").to_pylist()}
        assert set(rows) == {"old", _finding("exfil", "b", T0).id}, "other detectors' kept"
        assert rows["old"]["scope"] is None and rows["old"]["scope_start"] is None
        # Unscoped, it belongs to no run in particular: the next run of its detector
        # replaces it, as every run did before scopes.
        store.replace_findings(["exfil"], findings_table([]), day)
        assert store.count("findings") == 1
        store.replace_findings(["beacon"], findings_table([_finding("beacon", "b", T0)]), day)
        ids = store.scan("findings", ["id"]).column("id").to_pylist()
    finally:
        store.close()
    assert ids == [_finding("beacon", "b", T0).id], "the old row is replaced"


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("days")
    common = ["--days", "1", "--hosts", "12"]
    _run(
        "simulate", "--out", str(base / "d1"), "--start", "2026-03-02", "-s", "bmc_beacon", *common
    )
    _run("simulate", "--out", str(base / "d2"), "--start", "2026-03-03", "-s", "none", *common)
    return base / "d1", base / "d2", base / "d1" / "vigile.toml"


def test_hunts_over_two_days_keep_both_and_a_rerun_adds_nothing(
    two_days: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, d2, config = two_days
    db = tmp_path / "v.duckdb"
    hunt = ["--db", str(db), "--config", str(config), "--window-hours", "24", "--json"]
    _run("hunt", str(d1), *hunt)
    day1 = set(_ids(db))
    beacons = _ids(db, f"detector = 'beacon' AND src = '{BMC}' AND score >= 0.5")
    assert beacons, "the BMC's beacon is found on day one"
    _run("hunt", str(d2), *hunt)
    after = _ids(db)
    day2 = set(after) - day1
    assert day1 <= set(after), "day two's hunt kept day one's findings"
    assert day2 and len(after) == len(set(after))
    _run("hunt", *hunt)
    rerun = _ids(db)
    assert sorted(rerun) == sorted(after), "the same hunt on the same data: the same set"
    assert set(_ids(db, "scope_start >= TIMESTAMPTZ '2026-03-03'")) == day2

    # The console shows both days' findings, the beacon from day one among them.
    store = DuckDBStore(db)
    add_user(store, "admin", "a long test password")
    with TestClient(create_app(store, Config()), base_url="http://127.0.0.1") as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        form = {"username": "admin", "password": "a long test password"}
        form |= {"csrf_token": token.group(1), "next": "/"}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        shown = {f["id"] for f in client.get("/api/findings").json()}
        assert shown == set(rerun)
        assert client.get(f"/api/findings/{beacons[0]}").status_code == 200
    store.close()


def _inspect(tree: Path, db: Path, *more: str) -> None:
    # Exit code 3: the files tree holds a damaged .evtx on purpose; the rest is inspected.
    _run("inspect", "exchange", str(tree), "--db", str(db), "--json", *more, codes=(0, 3))


def test_inspecting_a_second_server_keeps_the_first(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    first, second = tmp_path / "ex01", tmp_path / "ex02"
    shutil.copytree(GOLDEN / "files" / "input", first)
    shutil.copytree(GOLDEN / "httpproxy" / "input", second)
    _inspect(first, db)
    ex01 = set(_ids(db))
    _inspect(second, db)
    ex02 = set(_ids(db)) - ex01
    assert ex01 and ex02 and set(_ids(db)) == ex01 | ex02
    _inspect(second, db)
    assert sorted(_ids(db)) == sorted(ex01 | ex02), "a rerun replaces, never adds"

    # Rerun of the first server after a file was cleaned: only its findings change.
    dump = _ids(db, "fqdn LIKE '%lsass.dmp'")
    assert len(dump) == 1
    (first / "Windows" / "Temp" / "lsass.dmp").unlink()
    _inspect(first, db)
    assert set(_ids(db)) == (ex01 - set(dump)) | ex02, "only the cleaned file's finding went"


def test_the_same_trace_on_two_named_servers_is_two_findings(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    tree = GOLDEN / "httpproxy" / "input"
    _inspect(tree, db, "--server", "EX01")
    one = set(_ids(db))
    _inspect(tree, db, "--server", "EX02")
    both = set(_ids(db))
    assert len(both) == 2 * len(one) and one < both
    assert set(_ids(db, "scope = 'exchange:EX01'")) == one


def test_inspect_rerun_keeps_the_consoles_suppressions(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    tree = GOLDEN / "httpproxy" / "input"
    _inspect(tree, db, "--server", "EX01")
    store = DuckDBStore(db)
    try:
        row = store.scan("findings", where=[]).to_pylist()[0]
        assert row["src"]
        entry = add_entry(store, "admin", "cidr", row["src"], "the red team's address")
    finally:
        store.close()
    assert _ids(db, f"suppressed_by = '{entry.entry_id}'")
    _inspect(tree, db, "--server", "EX01")
    assert row["id"] in _ids(db, f"suppressed_by = '{entry.entry_id}'")
