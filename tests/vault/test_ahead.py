"""The next folder's EXAMINE and FETCH sent behind the current folder's (the ``next_folder``
hint of ``Source.fetch_folder``), against the real Dovecot: the same messages whether the
hint is given, right, wrong or names a folder that is gone."""

from __future__ import annotations

import pytest
from tests.vault.dovecot import PASSWORD
from tests.vault.mailgen import fill, open_client

from vigile.vault.errors import SourceError
from vigile.vault.imap import ImapSource
from vigile.vault.settings import ImapAccount
from vigile.vault.source import FetchedMessage, RetryingSource

FOLDERS = {"INBOX": 6, "Archive": 4, "Empty": 0, "Été": 3}


@pytest.fixture
def folders(account: ImapAccount) -> tuple[ImapAccount, dict[str, list[FetchedMessage]]]:
    """An account with a few folders (one empty, one large message), and every folder's
    messages fetched one folder at a time, without hints."""
    client = open_client(account, PASSWORD)
    fill(client, FOLDERS, seed=3, large=1)
    client.logout()
    source = ImapSource(account)
    try:
        alone = {name: list(source.fetch_folder(name)) for name in FOLDERS}
    finally:
        source.close()
    assert [len(alone[name]) for name in FOLDERS] == list(FOLDERS.values())
    return account, alone


def test_folders_fetched_with_hints_are_the_folders_fetched_alone(
    folders: tuple[ImapAccount, dict[str, list[FetchedMessage]]],
) -> None:
    account, alone = folders
    order = ["INBOX", "Archive", "Été", "INBOX"]
    source = ImapSource(account)
    try:
        for n, name in enumerate(order):
            following = order[n + 1] if n + 1 < len(order) else None
            assert list(source.fetch_folder(name, next_folder=following)) == alone[name]
            # The next folder's commands were sent: its responses wait on the connection.
            assert (source._ahead is not None) == (following is not None)
        assert source.status("Archive").messages == 4  # the connection is in step
    finally:
        source.close()


def test_a_wrong_hint_costs_a_reconnection_not_a_message(
    folders: tuple[ImapAccount, dict[str, list[FetchedMessage]]],
) -> None:
    account, alone = folders
    source = RetryingSource(lambda: ImapSource(account), sleep=lambda _: None)
    try:
        assert list(source.fetch_folder("INBOX", next_folder="Archive")) == alone["INBOX"]
        assert list(source.fetch_folder("Été", next_folder="Empty")) == alone["Été"]
        assert source.retries == 1  # Archive's responses were on the wire: a new connection
        assert list(source.fetch_folder("Empty")) == []
        assert list(source.fetch_folder("INBOX", after=3)) == alone["INBOX"][3:]
    finally:
        source.close()


def test_a_hint_of_a_folder_gone_meanwhile_is_refused_then_asked_again(
    folders: tuple[ImapAccount, dict[str, list[FetchedMessage]]],
) -> None:
    account, alone = folders
    source = ImapSource(account)
    try:
        assert list(source.fetch_folder("INBOX", next_folder="Gone")) == alone["INBOX"]
        # EXAMINE Gone was refused (and the FETCH behind it): the call asks again, alone,
        # and fails as it would have without the hint; the connection stays in step.
        with pytest.raises(SourceError, match="Gone"):
            list(source.fetch_folder("Gone"))
        assert list(source.fetch_folder("Archive")) == alone["Archive"]
    finally:
        source.close()
