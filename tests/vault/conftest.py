"""Fixtures of the vault tests: a real Dovecot and accounts on it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.conftest import require_tool
from tests.vault.dovecot import PASSWORD, Dovecot, running_dovecot
from tests.vault.mailgen import fill, open_client

from vigile.vault.settings import ImapAccount


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the session; each test adds its own users."""
    require_tool("dovecot")
    require_tool("doveadm")
    with running_dovecot() as server:
        yield server


_counter = iter(range(1_000_000))


@pytest.fixture
def account(dovecot: Dovecot) -> ImapAccount:
    """A fresh, empty account on the test Dovecot."""
    return dovecot.add_user(f"user{os.getpid()}x{next(_counter)}")


@pytest.fixture
def filled(account: ImapAccount) -> ImapAccount:
    """A fresh account with 35 generated messages in three folders (one large)."""
    client = open_client(account, PASSWORD)
    fill(client, {"INBOX": 20, "Archive": 10, "Été": 5}, seed=11, large=1)
    client.logout()
    return account
