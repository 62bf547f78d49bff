"""The CLI's tables on a narrow terminal: what may wrap, what is cut, what stays whole."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from rich.cells import cell_len
from rich.console import Console

from vigile.cli import output
from vigile.cli.output import Format, emit_rows
from vigile.cli.vault.listing import MESSAGE_FIT, SNAPSHOT_FIT
from vigile.vault.listing import MESSAGE_COLUMNS, MESSAGE_FIELDS, SNAPSHOT_COLUMNS

LONG_SUBJECT = "Quarterly invoice for the services of October, with attachments"
MESSAGES = [
    {
        "folder": "INBOX",
        "uid": 1234,
        "date": datetime(2026, 11, 20, 8, 0, 5, tzinfo=UTC),
        "from": "Ünïcode Sender <someone.with.a.long.address@example.org>",
        "subject": LONG_SUBJECT,
        "size": 48_213,
        "flags": "\\Seen \\Answered",
        "id": "0123456789abcdef",
        "message_id": "<q4@example.org>",
    },
    {
        "folder": "Archive/2025",
        "uid": 7,
        "date": datetime(2026, 11, 19, 17, 42, tzinfo=UTC),
        "from": "low@example.net",
        "subject": "lower case names",
        "size": 1024,
        "flags": "",
        "id": "fedcba9876543210",
        "message_id": "",
    },
]


def _printed(monkeypatch: pytest.MonkeyPatch, width: int, *args, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines ``emit_rows(*args, **kw)`` prints on a console ``width`` cells wide."""
    con = Console(width=width, record=True, force_terminal=False)
    monkeypatch.setattr(output, "console", con)
    emit_rows(*args, **kw)
    return con.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_message_ids_stay_whole_and_free_text_is_cut(
    monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    lines = _printed(monkeypatch, width, MESSAGES, MESSAGE_COLUMNS, Format.TABLE, fit=MESSAGE_FIT)
    assert all(cell_len(line.rstrip()) <= width for line in lines)
    header = next(line for line in lines if line.startswith("folder"))
    assert header.split() == MESSAGE_COLUMNS  # every header whole, on one line
    for m in MESSAGES:
        # The id is copied into `vault restore --message`: whole, on its row's first line.
        (row,) = [line for line in lines if re.search(rf"\b{m['id']}\b", line)]
        folder = row.split()[0]  # on the same line, whole or cut
        assert folder == m["folder"] or m["folder"].startswith(folder.removesuffix("…"))
    assert any("…" in line for line in lines)  # the long sender and subject are cut
    assert not any(LONG_SUBJECT in line for line in lines)
    wide = width >= 120
    assert any("lower case names" in line for line in lines) is wide
    assert any("2026-11-20 08:00:05" in line for line in lines) is wide  # at 80 it wraps


def test_at_80_columns_each_message_takes_at_most_two_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _printed(monkeypatch, 80, MESSAGES, MESSAGE_COLUMNS, Format.TABLE, fit=MESSAGE_FIT)
    body = lines[lines.index(next(x for x in lines if x.startswith("─"))) + 1 :]
    assert len([x for x in body if x.strip()]) == 2 * len(MESSAGES)  # the date's time below


@pytest.mark.parametrize("fmt", [Format.JSON, Format.CSV])
def test_json_and_csv_are_never_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    monkeypatch.setattr(output, "console", Console(width=80, force_terminal=False))
    emit_rows(MESSAGES, MESSAGE_FIELDS, fmt, fit=MESSAGE_FIT)
    fitted = capsys.readouterr().out
    emit_rows(MESSAGES, MESSAGE_FIELDS, fmt)
    assert fitted == capsys.readouterr().out
    assert LONG_SUBJECT in fitted and "<q4@example.org>" in fitted


def test_other_tables_at_80_columns_keep_their_headers_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tables without a fit are laid out as before: the snapshot listing at 80."""
    row = {
        "snapshot": "2026-11-20T08-00-05Z-alice-3f2a9c",
        "account": "alice",
        "time": datetime(2026, 11, 20, 8, 0, 5, tzinfo=UTC),
        "folders": 50,
        "messages": 20_000,
        "fetched": 20_000,
        "stored": 19_870,
    }
    lines = _printed(monkeypatch, 80, [row], SNAPSHOT_COLUMNS, Format.TABLE)
    assert all(cell_len(line) <= 80 for line in lines)
    header = next(line for line in lines if "snapshot" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == SNAPSHOT_COLUMNS
    assert "20,000" in "".join(lines) and "19,870" in "".join(lines)


@pytest.mark.parametrize("width", [80, 120])
def test_snapshot_times_stay_whole_and_names_give_way(
    monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """`vault snapshots` at 80 columns: the time (what --at takes) and the counts on one
    line each; the snapshot's name, which no command takes, is cut first (whole at 120)."""
    name = "20261120T080005-3f2a9c0d11e2b7a4-9c1e22ab"  # as Vault.snapshot_name makes them
    row = {
        "snapshot": name,
        "account": "alice@example.org",
        "time": datetime(2026, 11, 20, 8, 0, 5, tzinfo=UTC),
        "folders": 50,
        "messages": 20_000,
        "fetched": 20_000,
        "stored": 19_870,
    }
    lines = _printed(monkeypatch, width, [row], SNAPSHOT_COLUMNS, Format.TABLE, fit=SNAPSHOT_FIT)
    assert all(cell_len(line.rstrip()) <= width for line in lines)
    header = next(line for line in lines if line.startswith("snapshot"))
    assert header.split() == SNAPSHOT_COLUMNS
    [cells] = [line for line in lines if line.startswith("2026") or line.startswith(name[:8])]
    assert "2026-11-20 08:00:05" in cells and re.search(r"\b50\s+20,000\s+20,000\s+19,870$", cells)
    assert (name in cells) is (width == 120)


def test_working_shows_a_spinner_on_a_terminal_only(monkeypatch) -> None:
    """A long step without a total (a hunt, an inspection) shows what it does and the
    time elapsed on a terminal, its text never read as markup; nothing under a pipe."""
    import io

    for terminal in (True, False):
        seen = io.StringIO()
        monkeypatch.setattr(output, "err_console", Console(file=seen, force_terminal=terminal))
        with output.working("inspecting /cases/[mx01]"):
            pass
        assert ("inspecting /cases/[mx01]" in seen.getvalue()) is terminal
        assert "0:00:00" in seen.getvalue() or not terminal
