"""Fixtures of the vault tests: a real Dovecot and accounts on it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.conftest import require_tool
from tests.vault.dovecot import Dovecot, running_dovecot

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
