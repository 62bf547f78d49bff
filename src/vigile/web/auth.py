"""Accounts, sessions, CSRF tokens and login throttling for the console.

* Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); only the
  hash is stored (``console_users``).
* A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure
  when served over TLS); the store keeps only its SHA-256 (``console_sessions``).
* Every state-changing request must carry the session's CSRF token, in the
  ``X-CSRF-Token`` header (API) or a ``csrf_token`` form field (forms). The login and
  first-account forms, which come before any session, use a double-submit cookie.
* Failed logins are counted per user name and per client address; after
  :data:`MAX_FAILURES` within :data:`FAILURE_WINDOW` further attempts are refused
  (HTTP 429) until the window has passed, whatever the password.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vigile.errors import ConfigError
from vigile.store import Pred, Store

SESSION_COOKIE = "vigile_session"
LOGIN_CSRF_COOKIE = "vigile_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)
MAX_FAILURES = 5
FAILURE_WINDOW = 15 * 60.0
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Session:
    """A logged-in user and the CSRF token their requests must echo."""

    username: str
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def count_users(store: Store) -> int:
    """How many console accounts exist."""
    return store.scan("console_users", ["username"]).num_rows


def add_user(store: Store, username: str, password: str, *, replace: bool = False) -> None:
    """Create an account (or, with ``replace``, set a new password); ConfigError if invalid."""
    username = username.strip()
    if not username or any(c.isspace() for c in username) or len(username) > 64:
        raise ConfigError("a user name is 1 to 64 characters without spaces")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    exists = store.scan("console_users", ["username"], where=[Pred("username", "=", username)])
    if exists.num_rows and not replace:
        raise ConfigError(f"user {username!r} exists; use --replace to set a new password")
    row = {"username": username, "password_hash": _hasher.hash(password)}
    with store.state_writer() as w:
        w.delete("console_users", [Pred("username", "=", username)])
        w.delete("console_sessions", [Pred("username", "=", username)])
        w.insert("console_users", [{**row, "created_at": datetime.now(UTC)}])


def verify_password(store: Store, username: str, password: str) -> bool:
    """True if the account exists and the password is right."""
    rows = store.scan(
        "console_users", ["password_hash"], where=[Pred("username", "=", username)]
    ).to_pylist()
    if not rows:
        # Hash anyway so a wrong user name takes as long as a wrong password.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(rows[0]["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return False


def start_session(store: Store, username: str) -> tuple[str, Session]:
    """A new session: the cookie token (shown once) and the session it opens."""
    token = secrets.token_urlsafe(32)
    session = Session(username, secrets.token_urlsafe(32))
    now = datetime.now(UTC)
    with store.state_writer() as w:
        w.delete("console_sessions", [Pred("expires_at", "<", now)])
        w.insert(
            "console_sessions",
            [
                {
                    "token_sha256": _digest(token),
                    "username": username,
                    "csrf_token": session.csrf_token,
                    "created_at": now,
                    "expires_at": now + SESSION_LIFETIME,
                }
            ],
        )
    return token, session


def find_session(store: Store, token: str | None) -> Session | None:
    """The live session a cookie token belongs to, or None."""
    if not token:
        return None
    rows = store.scan(
        "console_sessions",
        ["username", "csrf_token", "expires_at"],
        where=[Pred("token_sha256", "=", _digest(token))],
    ).to_pylist()
    if not rows or rows[0]["expires_at"] <= datetime.now(UTC):
        return None
    return Session(rows[0]["username"], rows[0]["csrf_token"])


def end_session(store: Store, token: str | None) -> None:
    """Forget a session (log out)."""
    if token:
        with store.state_writer() as w:
            w.delete("console_sessions", [Pred("token_sha256", "=", _digest(token))])


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; False if either is missing."""
    return bool(expected) and bool(given) and secrets.compare_digest(str(expected), str(given))


class LoginThrottle:
    """Counts failed logins per key (user name, client address) in a sliding window.

    Written here rather than taken from a rate-limiting library: those limit requests
    per client, while this must count *failures* per account across clients, and the
    console is one process, so an in-memory window is all the state it needs.
    """

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, *keys: str) -> int:
        """Seconds until a login may be tried again for these keys (0: allowed now)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            while times and times[0] <= now - self.window:
                times.popleft()
            if times and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
