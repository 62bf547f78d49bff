"""FastAPI dependencies: the console's state, the logged-in session, CSRF checks.

Handlers and dependencies are ``async``: they then all run on the event loop's one
thread, so the single DuckDB connection is never used by two threads at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates

from vigile.config import Config
from vigile.store import Store
from vigile.web.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    LoginThrottle,
    Session,
    find_session,
    tokens_match,
)


@dataclass
class Console:
    """What every request handler needs: the store, the config, and settings."""

    store: Store
    config: Config
    templates: Jinja2Templates
    secure_cookies: bool = False
    allow_setup: bool = False
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


class LoginRequiredError(Exception):
    """A page was asked for without a session; the app redirects to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def api_session(request: Request) -> Session:
    """The caller's session, or 401."""
    session = find_session(get_console(request).store, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise HTTPException(401, "log in first")
    return session


async def page_session(request: Request) -> Session:
    """The caller's session, or a redirect to the login page."""
    session = find_session(get_console(request).store, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequiredError(request.url.path)
    return session


async def api_csrf(request: Request, session: Session = Depends(api_session)) -> Session:
    """A session whose request carries its CSRF token in the header, or 403."""
    if not tokens_match(session.csrf_token, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return session


async def form_csrf(request: Request, session: Session = Depends(page_session)) -> Session:
    """A session whose form carries its CSRF token, or 403."""
    form = await request.form()
    if not tokens_match(session.csrf_token, str(form.get("csrf_token", ""))):
        raise HTTPException(403, "missing or wrong CSRF token")
    return session
