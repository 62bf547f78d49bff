"""Repeated hunts over sliding windows: a newer verdict on a subject supersedes the older
one (Store.replace_findings, FindingScope.supersedes).

Unit tests and a Hypothesis property over the store, then the CLI as cron runs it: an
hourly ingest of simulated, hourly-rotated Zeek logs followed by ``vigile hunt``.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vigile.cli import app
from vigile.detect import Finding, findings_table
from vigile.store import FindingScope, Pred, Window
from vigile.store.duckdb import DuckDBStore
from vigile.web.allowlist import add_entry

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
SUBJECTS = ("a", "b", "c")


def _finding(src: str, window: Window, detector: str = "beacon") -> Finding:
    assert window.start is not None and window.end is not None
    return Finding(detector, src, "192.0.2.1", None, 0.8, window.start, window.end, "x")


def _hunt(store: DuckDBStore, window: Window, srcs: tuple[str, ...], verdicts: bool = True) -> None:
    findings = [_finding(s, window) for s in srcs]
    store.replace_findings(
        ["beacon"], findings_table(findings), FindingScope(None, window, verdicts)
    )


def _rows(store: DuckDBStore) -> list[dict[str, Any]]:
    return store.scan("findings", ["src", "scope_start", "scope_end"], order_by=["src"]).to_pylist()


def test_an_hourly_sliding_hunt_keeps_one_verdict_per_subject() -> None:
    store = DuckDBStore(":memory:")
    for hour in range(5):
        _hunt(store, Window(T0 + hour * HOUR, T0 + hour * HOUR + DAY), ("a", "b"))
    last = T0 + 4 * HOUR
    assert _rows(store) == [
        {"src": s, "scope_start": last, "scope_end": last + DAY} for s in ("a", "b")
    ]


def test_what_the_newer_run_did_not_supersede_stays() -> None:
    store = DuckDBStore(":memory:")
    _hunt(store, Window(T0 - DAY, T0), ("a",))  # yesterday's daily hunt
    _hunt(store, Window(T0, T0 + DAY), ("a", "b", "c"))
    # An hour later "c" is not reported again: the run did not see all of its evidence.
    _hunt(store, Window(T0 + HOUR, T0 + DAY + HOUR), ("a", "b"))
    got = Counter((r["src"], r["scope_start"]) for r in _rows(store))
    assert got == {("a", T0 - DAY): 1, ("a", T0 + HOUR): 1, ("b", T0 + HOUR): 1, ("c", T0): 1}
    # Hunting an old window again leaves the verdicts of later windows alone (it
    # supersedes yesterday's, which ends before it) and adds its own.
    _hunt(store, Window(T0 - HOUR, T0 + DAY - HOUR), ("a", "b", "c"))
    starts = Counter(r["scope_start"] for r in _rows(store))
    assert starts == {T0 + HOUR: 2, T0: 1, T0 - HOUR: 3}
    # Another detector's findings on the same subject are not superseded.
    other_window = Window(T0, T0 + DAY)
    other = _finding("a", other_window, "exfil")
    store.replace_findings(["exfil"], findings_table([other]), FindingScope(None, other_window))
    _hunt(store, Window(T0 + 2 * HOUR, T0 + DAY + 2 * HOUR), ("a",))
    assert store.count("findings") == 6  # the two older "a" beacons went, one came
    assert other.id in store.scan("findings", ["id"]).column("id").to_pylist()


def test_traces_are_never_superseded_by_later_traces_of_their_subject() -> None:
    store = DuckDBStore(":memory:")
    _hunt(store, Window(T0, T0 + DAY), ("a",), verdicts=False)
    _hunt(store, Window(T0 + HOUR, T0 + DAY + HOUR), ("a",), verdicts=False)
    assert store.count("findings") == 2


def test_unscoped_rows_of_old_stores_are_still_replaced() -> None:
    store = DuckDBStore(":memory:")
    old = _finding("a", Window(T0 - DAY, T0))
    store.replace_findings(["beacon"], findings_table([old]), FindingScope())
    store._con.execute("UPDATE findings SET scope_start = NULL, scope_end = NULL")
    _hunt(store, Window(T0 + HOUR, T0 + DAY), ())
    assert store.count("findings") == 0


# A run: the hour its window starts at, its length in hours, the subjects it reports.
RUNS = st.lists(
    st.tuples(
        st.integers(0, 48), st.integers(1, 30), st.sets(st.sampled_from(SUBJECTS), max_size=3)
    ),
    min_size=1,
    max_size=8,
)


def _window(start: int, length: int) -> Window:
    return Window(T0 + start * HOUR, T0 + (start + length) * HOUR)


def _ids(store: DuckDBStore) -> list[str]:
    return sorted(store.scan("findings", ["id"]).column("id").to_pylist())


@settings(max_examples=40)
@given(RUNS)
def test_property_rerunning_a_hunt_adds_nothing_and_newer_verdicts_stay(
    runs: list[tuple[int, int, set[str]]],
) -> None:
    store = DuckDBStore(":memory:")
    for start, length, srcs in runs:
        window = _window(start, length)
        before = store.scan("findings", ["id", "scope_start", "scope_end"]).to_pylist()
        _hunt(store, window, tuple(sorted(srcs)))
        after = _ids(store)
        _hunt(store, window, tuple(sorted(srcs)))
        assert _ids(store) == after, "the same hunt twice: the same rows"
        for r in before:  # a verdict over a window ending later is never taken away
            assert window.end is not None
            if r["scope_end"] > window.end or r["scope_end"] <= window.start:
                assert r["id"] in after
        assert {_finding(s, window).id for s in srcs} <= set(after)


@settings(max_examples=40)
@given(RUNS)
def test_property_sliding_windows_leave_one_subject_no_overlapping_findings(
    runs: list[tuple[int, int, set[str]]],
) -> None:
    store = DuckDBStore(":memory:")
    starts = sorted(start for start, _, _ in runs)
    ends = sorted(start + length for start, length, _ in runs)
    for start, end, (_, _, srcs) in zip(starts, ends, runs, strict=True):
        _hunt(store, _window(start, max(1, end - start)), tuple(sorted(srcs)))
        rows = _rows(store)
        for i, r in enumerate(rows):
            for q in rows[i + 1 :]:
                if r["src"] == q["src"]:
                    assert r["scope_end"] <= q["scope_start"] or q["scope_end"] <= r["scope_start"]


# An inspection: the hours its copy's logs cover and the (subject, hour) traces in them.
COPIES = st.lists(
    st.tuples(
        st.integers(0, 48),
        st.integers(1, 30),
        st.sets(st.tuples(st.sampled_from(SUBJECTS), st.integers(0, 80)), max_size=6),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40)
@given(COPIES)
def test_property_an_inspection_replaces_exactly_the_traces_in_what_it_read(
    copies: list[tuple[int, int, set[tuple[str, int]]]],
) -> None:
    store = DuckDBStore(":memory:")
    for start, length, traces in copies:
        window = _window(start, length)
        assert window.start is not None and window.end is not None
        found = []
        for src, hour in sorted(traces):
            at = T0 + hour * HOUR
            if window.start <= at < window.end:  # a copy holds only its logs' traces
                found.append(Finding("trace", src, None, None, 0.9, at, at, "x", scope="ex"))
        before = store.scan("findings", ["id", "window_start"]).to_pylist()
        scope = FindingScope("ex", window, verdicts=False)
        store.replace_findings(["trace"], findings_table(found), scope)
        after = set(_ids(store))
        assert {f.id for f in found} <= after
        for r in before:
            read_again = window.start <= r["window_start"] < window.end
            assert (r["id"] in after) == (not read_again or r["id"] in {f.id for f in found})


def _run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _per_subject(db: Path) -> dict[tuple[str, ...], list[tuple[datetime, datetime]]]:
    store = DuckDBStore(db, read_only=True)
    try:
        rows = store.scan("findings").to_pylist()
    finally:
        store.close()
    subjects: dict[tuple[str, ...], list[tuple[datetime, datetime]]] = {}
    for r in rows:
        subject = (r["detector"], r["src"], r["dst"], r["fqdn"])
        subjects.setdefault(subject, []).append((r["scope_start"], r["scope_end"]))
    return subjects


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rotated") / "logs"
    common = ["--days", "2", "--hosts", "12", "--start", "2026-03-02", "--rotate"]
    _run("simulate", "--out", str(out), "-s", "bmc_beacon", *common)
    return out


def test_hourly_ingest_and_hunt_keeps_one_finding_per_subject(
    rotated: Path, tmp_path: Path
) -> None:
    db = tmp_path / "v.duckdb"
    hunt = ["--db", str(db), "--config", str(rotated / "vigile.toml"), "--json"]
    _run("hunt", str(rotated / "2026-03-02"), *hunt)
    first = _per_subject(db)
    truth = next(csv.DictReader((rotated / "ground-truth.csv").open()))
    beacon = ("beacon", truth["src"], truth["dst"])
    assert [s for s in first if s[:3] == beacon], "the BMC's beacon is found"
    store = DuckDBStore(db)
    try:
        entry = add_entry(store, "admin", "cidr", truth["dst"], "a lab address", detector="beacon")
    finally:
        store.close()
    for hour in ("00", "01", "02"):
        logs = sorted((rotated / "2026-03-03").glob(f"*.{hour}:00:00-*.log.gz"))
        assert logs
        _run("hunt", *map(str, logs), *hunt)
    subjects = _per_subject(db)
    assert [len(w) for s, w in subjects.items() if s[:3] == beacon] == [1]
    for subject, windows in subjects.items():
        windows.sort()
        for (_, end), (start, _) in pairwise(windows):
            assert end <= start, f"{subject} has findings of overlapping windows"
    assert sum(map(len, subjects.values())) < 2 * sum(map(len, first.values()))
    store = DuckDBStore(db, read_only=True)
    try:
        marks = store.scan(
            "findings",
            ["suppressed_by"],
            where=[
                Pred(c, "=", v) for c, v in zip(("detector", "src", "dst"), beacon, strict=True)
            ],
        ).column("suppressed_by")
    finally:
        store.close()
    assert set(marks.to_pylist()) == {entry.entry_id}, "the console's suppression holds"
