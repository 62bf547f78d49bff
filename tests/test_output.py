"""The CLI's tables: which columns may wrap on a narrow terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from vigile.cli import output
from vigile.cli.output import Format, emit_rows


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> Console:
    """An 80-column console in place of the CLI's, recording what it prints."""
    con = Console(width=80, record=True, force_terminal=False)
    monkeypatch.setattr(output, "console", con)
    return con


def test_ids_and_short_words_never_wrap(narrow: Console) -> None:
    # The columns of `vigile vault ls`.
    row = {
        "folder": "INBOX",
        "uid": 1234,
        "date": datetime(2026, 11, 20, 8, 0, 5, tzinfo=UTC),
        "size": 48_213,
        "flags": "\\Seen \\Answered",
        "from": "Ünïcode Sender <someone.with.a.long.address@example.org>",
        "subject": "Quarterly invoice for the services of October, with attachments",
        "id": "0123456789abcdef",
    }
    emit_rows([row], list(row), Format.TABLE)
    text = narrow.export_text()
    # The id is copied into `vault restore --message`: it stays whole on one line, while
    # the sender and subject wrap to make room.
    assert "0123456789abcdef" in text
    assert "INBOX" in text and "1,234" in text
    assert "Quarterly invoice for the services of October" not in text  # wrapped
