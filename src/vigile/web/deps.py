"""FastAPI dependencies: the console's state, the request's store, the session, CSRF.

Every route but the static files depends on :func:`request_store`, which opens the
store for the request (read-only for ``GET``/``HEAD``) and closes it when the handler
has returned (see :mod:`vigile.web.access`); handlers reach it with :func:`store_of`.
Handlers and dependencies are ``async`` and requests take the store one at a time, so
a connection is never used by two requests at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates

from vigile.config import Config
from vigile.store import Store
from vigile.web.access import StoreAccess
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
    """What every request handler needs: access to the store, the config, and settings."""

    access: StoreAccess
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


#: Methods that only read: their requests open the store read-only.
READ_METHODS = frozenset({"GET", "HEAD"})


async def request_store(request: Request) -> AsyncIterator[Store]:
    """Open the store for this request and close it once the handler has returned."""
    write = request.method not in READ_METHODS
    async with get_console(request).access.request(write=write) as store:
        request.state.store = store
        try:
            yield store
        finally:
            del request.state.store


def store_of(request: Request) -> Store:
    """The store opened for this request by :func:`request_store`."""
    store: Store = request.state.store
    return store


async def api_session(request: Request) -> Session:
    """The caller's session, or 401."""
    session = find_session(store_of(request), request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise HTTPException(401, "log in first")
    return session


async def page_session(request: Request) -> Session:
    """The caller's session, or a redirect to the login page."""
    session = find_session(store_of(request), request.cookies.get(SESSION_COOKIE))
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
