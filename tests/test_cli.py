"""The CLI as a user runs it: exit codes, one-line errors, output formats."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RITA = "zeek/rita"


def vigile(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigile", *args],
        cwd=cwd,
        env=os.environ | {"COLUMNS": "80"},  # the width of a terminal nobody resized
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_text_file_is_refused_with_nonzero_exit(shared_data, tmp_path):
    r = vigile("ingest", str(shared_data / RITA / "text_file"), "--db", "v.duckdb", cwd=tmp_path)
    assert r.returncode == 3
    assert "not a Zeek log" in " ".join((r.stdout + r.stderr).split())
    assert "Traceback" not in r.stderr


def test_truncated_exit_code_and_json_listing(shared_data, tmp_path):
    r = vigile(
        "ingest", str(shared_data / RITA / "truncated"), "--db", "v.duckdb", "--json", cwd=tmp_path
    )
    assert r.returncode == 3
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {row["status"] for row in rows} == {"partial", "refused"}
    # 58 of conn.log and 2 of conn_json.log: its line 3, whole, has an originator port
    # (93145) beyond 16 bits and is a rejected row, as its cut line 4 is.
    assert sum(row["conn"] for row in rows) == 60
    assert sum(row["bad_rows"] for row in rows) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["ingest", "does-not-exist.log"], "does-not-exist.log: no such file or directory"),
        (["hunt", "--config", "nope.toml"], "nope.toml: configuration file not found"),
        (["status", "--db", "absent.duckdb"], "no store here yet"),
        (["hunt", "--db", "absent.duckdb"], "no store here yet; run `vigile ingest PATH` first"),
        (["ingest", "x", "--json", "--csv"], "choose one of --json and --csv"),
        (["vault", "backup"], "no [[vault.accounts]] configured (no ./vigile.toml here: give"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "x").write_text("")
    r = vigile(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3  # one message, maybe wrapped


def test_a_wrong_path_leaves_no_store_and_an_empty_store_is_not_hunted(tmp_path):
    """A mistyped path is refused before a store is created; a hunt over a store that
    holds no traffic says so and exits 2 instead of reporting "no findings"."""
    for command in ("ingest", "hunt"):
        r = vigile(command, "missing_hots", cwd=tmp_path)
        assert r.returncode == 2 and "missing_hots: no such file or directory" in r.stderr
    assert not (tmp_path / "vigile.duckdb").exists()
    (tmp_path / "notes.txt").write_text("not traffic\n")
    r = vigile("hunt", "notes.txt", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "vigile.duckdb holds no traffic yet" in " ".join(r.stderr.split())
    assert "No findings" not in r.stdout
    r = vigile("report", "--html", "r.html", cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "r.html").exists()
    assert "holds no traffic and no findings" in " ".join(r.stderr.split())


def test_status_csv_after_ingest(shared_data, tmp_path):
    r = vigile("ingest", str(shared_data / RITA / "proxy"), "--db", "v.duckdb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = vigile("status", "--db", "v.duckdb", "--csv", cwd=tmp_path)
    rows = {row["table"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert rows["conn"]["rows"] == "463" and rows["sources"]["rows"] == "4"


def test_init_writes_a_config_and_refuses_to_overwrite(tmp_path):
    done = vigile("init", cwd=tmp_path)
    assert done.returncode == 0
    assert "[network]" in (tmp_path / "vigile.toml").read_text()
    assert "then `vigile ingest PATH` and `vigile hunt`" in " ".join(done.stderr.split())
    elsewhere = vigile("init", "site.toml", cwd=tmp_path)
    assert "`vigile hunt --config site.toml`" in " ".join(elsewhere.stderr.split())
    again = vigile("init", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_hunt_writes_a_report(shared_data, tmp_path):
    r = vigile(
        "hunt",
        str(shared_data / RITA / "proxy"),
        "--db",
        "v.duckdb",
        "--report",
        "out/report.md",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "out" / "report.md").read_text()
    assert text.startswith("# vigile hunt report")
    assert "Window: 20" in text
    # The terminal listing names the window scored and every finding's id, which
    # `vigile explain` takes as printed.
    assert re.match(r"Window: 20\d\d-\d\d-\d\d \d\d:\d\d → 20", r.stdout)
    ids = re.findall(r"^ +id ([0-9a-f]{16})\b", r.stdout, re.MULTILINE)
    assert ids and "vigile explain ID" in r.stderr
    shown = vigile("explain", ids[0], "--db", "v.duckdb", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"Evidence of finding {ids[0]}" in shown.stdout


def test_markup_in_data_is_printed_not_interpreted(tmp_path):
    """File names and log content may hold Rich markup such as '[bold]'; it is shown as text."""
    bad = tmp_path / "weird[red]name[bold].log"
    bad.write_text("no zeek here\n")
    r = vigile("ingest", str(bad), "--db", "v.duckdb", cwd=tmp_path)
    assert r.returncode == 3
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr
    assert "weird[red]name[bold].log" in "".join((r.stdout + r.stderr).split())


def test_ingest_table_keeps_one_line_per_file_in_80_columns(shared_data, tmp_path):
    """Statuses, formats and counts are not wrapped in a narrow terminal; the counts
    read as ``N table``; the bad_rows column appears only when a file had bad rows."""
    folder = shared_data / RITA / "truncated"
    r = vigile("ingest", str(folder), "--db", "v.duckdb", cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "status" in line)
    assert "bad_rows" in header and "rows" in header
    partial = next(line for line in lines if "partial" in line)
    assert "zeek-tsv/conn" in partial
    assert re.search(r"\b\d+ conn\b", partial)
    clean = vigile("ingest", str(shared_data / RITA / "open_sni"), "--db", "w.duckdb", cwd=tmp_path)
    assert clean.returncode == 0
    header = next(line for line in clean.stdout.splitlines() if "status" in line)
    assert "bad_rows" not in header
    assert "ingested" in clean.stdout


def test_version_names_the_release_and_how_kernels_run(tmp_path):
    from importlib.metadata import version

    r = vigile("--version", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"vigile {version('vigile')}"
    assert lines[1].startswith("Python 3.") and f"duckdb {version('duckdb')}" in lines[1]
    assert lines[2].startswith("kernels: ")
    forced = subprocess.run(
        [sys.executable, "-m", "vigile", "--version"],
        cwd=tmp_path,
        env=os.environ | {"VIGILE_JIT": "1"},
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert forced.stdout.splitlines()[2] == "kernels: just in time: VIGILE_JIT is set"


def _zeek_log(path: Path, kind: str, fields: str, row: str) -> None:
    n = len(fields.split())
    path.write_text(
        f"#separator \\x09\n#path\t{kind}\n#fields\t" + "\t".join(fields.split()) + "\n"
        "#types\t" + "\t".join(["string"] * n) + "\n" + "\t".join(row.split()) + "\n"
    )


def test_many_unused_logs_and_duplicates_are_counted_on_one_line(tmp_path):
    """A Zeek folder of hundreds of logs vigile does not read (weird, files, …) lists the
    files it read, and counts the others by reason on one line; a second run counts its
    duplicates the same way. --json still lists every file."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for hour in range(10):
        _zeek_log(logs / f"weird.{hour:02}.log", "weird", "ts uid name", f"1.0 C{hour} bad")
        _zeek_log(
            logs / f"conn.{hour:02}.log",
            "conn",
            "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto",
            f"{1700000000 + hour}.0 C{hour} 10.0.0.1 5000 10.0.0.2 80 tcp",
        )
    first = vigile("ingest", str(logs), "--db", "v.duckdb", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "zeek-tsv/conn" in first.stdout and "weird" not in first.stdout
    said = " ".join(first.stderr.split())
    assert "skipped 10 files (--json lists each): 10 × Zeek 'weird' log" in said
    again = vigile("ingest", str(logs), "--db", "v.duckdb", cwd=tmp_path)
    assert again.returncode == 0 and "Ingested files" not in again.stdout
    said = " ".join(again.stderr.split())
    assert "duplicate 10 files (--json lists each): 10 × already ingested" in said
    listed = vigile("ingest", str(logs), "--db", "v.duckdb", "--json", cwd=tmp_path)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 20 and sum(r["status"] == "skipped" for r in rows) == 10
