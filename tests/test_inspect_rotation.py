"""Inspecting a newer copy of a server whose old logs have rotated away keeps the findings
from those logs; files on disk are looked at again by every run (docs/exchange.md).

The copies are built from the golden HttpProxy log (tests/golden/exchange/httpproxy):
the same ProxyLogon requests on other days, from another address each day.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.detect import Finding, findings_table
from vigile.exchange.collect import Collection, Coverage
from vigile.exchange.inspect import examined_window
from vigile.store import FindingScope, Window
from vigile.store.duckdb import DuckDBStore

GOLDEN = Path(__file__).parent / "golden" / "exchange"
LOG = (
    GOLDEN / "httpproxy" / "input" / "Logging" / "HttpProxy" / "Ecp" / "HttpProxy_2021030302-1.LOG"
)
SHELL = GOLDEN / "files" / "input" / "inetpub" / "wwwroot" / "aspnet_client" / "system_web"
ATTACKER = "203.0.113.7"
MICROSECOND = timedelta(microseconds=1)
#: Day of each log and the address the attack came from that day.
DAYS = {"2021-03-03": "203.0.113.7", "2021-04-03": "198.51.100.9", "2021-05-03": "192.0.2.77"}


def _log(folder: Path, day: str) -> None:
    text = LOG.read_text(encoding="utf-8").replace("2021-03-03", day)
    name = f"HttpProxy_{day.replace('-', '')}02-1.LOG"
    target = folder / "Logging" / "HttpProxy" / "Ecp" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace(ATTACKER, DAYS[day]), encoding="utf-8")


def _inspect(tree: Path, db: Path) -> None:
    args = ["inspect", "exchange", str(tree), "--db", str(db), "--server", "EX01", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def _findings(db: Path) -> list[dict[str, Any]]:
    store = DuckDBStore(db, read_only=True)
    try:
        return store.scan("findings").to_pylist()
    finally:
        store.close()


def test_a_newer_copy_keeps_the_findings_of_rotated_logs_and_drops_cleaned_files(
    tmp_path: Path,
) -> None:
    db = tmp_path / "v.duckdb"
    march = tmp_path / "march"
    _log(march, "2021-03-03")
    _log(march, "2021-04-03")
    shutil.copytree(SHELL, march / "inetpub" / "wwwroot" / "aspnet_client" / "system_web")
    _inspect(march, db)
    first = _findings(db)
    by_src = {f["src"] for f in first}
    assert {"203.0.113.7", "198.51.100.9"} <= by_src
    shell = [f["id"] for f in first if f["detector"] == "exchange-webshell-file"]
    assert shell, "the web shell on disk is found"
    logged = {f["id"] for f in first if f["detector"].endswith("-httpproxy")}
    # A month later: March's log has rotated away, May's is new, the web shell was
    # cleaned off the disk.
    may = tmp_path / "may"
    _log(may, "2021-04-03")
    _log(may, "2021-05-03")
    _inspect(may, db)
    second = _findings(db)
    ids = {f["id"] for f in second}
    assert logged <= ids, "findings from the rotated March log (and April's) are kept"
    assert "192.0.2.77" in {f["src"] for f in second}
    assert not set(shell) & ids, "the cleaned web shell's finding is gone"
    assert len(ids) == len(second)

    # The same copy again: nothing added, nothing lost.
    _inspect(may, db)
    assert sorted(f["id"] for f in _findings(db)) == sorted(ids)
    # Each log finding carries the span its run's logs covered: March's the first run's,
    # April's (found again) the second's.
    spans = {f["src"]: f["scope_start"].date() for f in second if f["id"] in logged}
    assert spans == {"203.0.113.7": date(2021, 3, 3), "198.51.100.9": date(2021, 4, 3)}


def test_an_inspection_that_fails_midway_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check family's findings and the suppressions are one transaction: a crash
    after some families were replaced (here: while re-applying the console's
    suppressions, the last step) leaves no family updated and the others not."""
    db = tmp_path / "v.duckdb"
    march = tmp_path / "march"
    _log(march, "2021-03-03")
    shutil.copytree(SHELL, march / "inetpub" / "wwwroot" / "aspnet_client" / "system_web")
    _inspect(march, db)
    before = _findings(db)
    may = tmp_path / "may"
    _log(may, "2021-05-03")  # would add May's findings and drop the cleaned web shell's

    def crash(*_: object) -> None:
        raise RuntimeError("killed while suppressing")

    monkeypatch.setattr("vigile.web.allowlist._apply", crash)
    args = ["inspect", "exchange", str(may), "--db", str(db), "--server", "EX01", "--json"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, RuntimeError)
    assert _findings(db) == before


def test_a_newer_copy_replaces_the_findings_of_the_logs_it_covers_again(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    first = tmp_path / "first"
    _log(first, "2021-03-03")
    _log(first, "2021-04-03")
    _inspect(first, db)
    assert {"203.0.113.7", "198.51.100.9"} <= {f["src"] for f in _findings(db)}
    # The newer copy still holds April's log, read again, and it no longer shows the
    # attack (a check fixed, a log corrected): April's findings go, March's (its log
    # rotated away) stay, though the earlier copy's span was never covered again.
    newer = tmp_path / "newer"
    _log(newer, "2021-05-03")
    log = newer / "Logging" / "HttpProxy" / "Ecp" / "HttpProxy_2021040302-1.LOG"
    text = LOG.read_text(encoding="utf-8").replace("2021-03-03", "2021-04-03")
    log.parent.mkdir(parents=True, exist_ok=True)
    text = text.replace(ATTACKER, DAYS["2021-04-03"]).replace("ServerInfo~a]@", "SMTP:a@")
    log.write_text(text, encoding="utf-8")
    _inspect(newer, db)
    srcs = {f["src"] for f in _findings(db)}
    assert "198.51.100.9" not in srcs and {"203.0.113.7", "192.0.2.77"} <= srcs


def test_traces_stored_before_windows_are_replaced_within_what_a_copy_covers() -> None:
    store = DuckDBStore(":memory:")
    march, april = (datetime(2021, m, 3, tzinfo=UTC) for m in (3, 4))
    old = [
        Finding("exchange-ssrf-httpproxy", s, None, "MX01", 0.85, t, t, "x", scope="ex")
        for s, t in (("a", march), ("b", april))
    ]
    store.replace_findings(["exchange-ssrf-httpproxy"], findings_table(old), FindingScope("ex"))
    newer = FindingScope("ex", Window(april, april + timedelta(days=30)), verdicts=False)
    store.replace_findings(["exchange-ssrf-httpproxy"], findings_table([]), newer)
    assert store.scan("findings", ["src"]).column("src").to_pylist() == ["a"]


def _coverage(oldest: datetime | None, newest: datetime | None) -> Coverage:
    return Coverage("x", files=1, rows=1, oldest=oldest, newest=newest)


def test_the_window_of_a_check_is_what_all_its_sources_covered() -> None:
    col = Collection()
    march, april, may = (datetime(2021, m, 3, tzinfo=UTC) for m in (3, 4, 5))
    col.coverage["httpproxy"] = _coverage(march, may)
    col.coverage["iis"] = _coverage(april, may)
    assert examined_window(col, ("file",)) == Window()
    assert examined_window(col, ("iis", "httpproxy")) == Window(april, may + MICROSECOND)
    assert examined_window(col, ("ecp",)) is None, "no ECP logs: nothing examined"
    assert examined_window(col, ("ecp", "httpproxy")) is None
    col.coverage["oab"] = _coverage(march, march)
    assert examined_window(col, ("oab", "iis")) is None, "no time both cover"


def test_a_copy_without_logs_replaces_no_log_finding(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    first = tmp_path / "first"
    _log(first, "2021-03-03")
    shutil.copytree(SHELL, first / "inetpub" / "wwwroot" / "aspnet_client" / "system_web")
    _inspect(first, db)
    logged = {f["id"] for f in _findings(db) if f["detector"].endswith("-httpproxy")}
    assert logged
    files_only = tmp_path / "files-only"
    shutil.copytree(SHELL, files_only / "inetpub" / "wwwroot" / "aspnet_client" / "system_web")
    _inspect(files_only, db)
    after = _findings(db)
    assert logged <= {f["id"] for f in after}
    assert [f["detector"] for f in after].count("exchange-webshell-file") == 1
