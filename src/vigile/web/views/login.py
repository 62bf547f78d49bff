"""Log in, log out, and the first-account page.

The login and first-account forms come before any session, so their CSRF token is
a double-submit cookie: a random value set when the form is shown, which the
submitted form must repeat. The first-account page exists only while the store
has no account and the console listens on a loopback address.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vigile.errors import ConfigError
from vigile.web import audit, auth
from vigile.web.deps import form_csrf, get_console, store_of
from vigile.web.views import render

router = APIRouter(include_in_schema=False)


def _safe_next(value: object) -> str:
    r"""The path to go to after logging in, if it stays on this site.

    >>> _safe_next("/hosts/10.0.0.1"), _safe_next("//evil.example"), _safe_next("/\\evil")
    ('/hosts/10.0.0.1', '/', '/')
    """
    text = str(value or "/")
    # "//host" and "/\\host" both leave the site in browsers; only plain paths are kept.
    return text if text.startswith("/") and not text.startswith(("//", "/\\")) else "/"


def _form_page(request: Request, template: str, status_code: int = 200, **ctx: object) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, template, None, status_code, login_csrf=token, **ctx)
    response.set_cookie(
        auth.LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=get_console(request).secure_cookies,
        path="/",
    )
    return response


def _setup_open(request: Request) -> bool:
    return get_console(request).allow_setup and auth.count_users(store_of(request)) == 0


async def _checked_form(request: Request) -> dict[str, str]:
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not auth.tokens_match(request.cookies.get(auth.LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page")
    return form


def _logged_in(request: Request, username: str, next_path: str) -> Response:
    token, _ = auth.start_session(store_of(request), username)
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        max_age=int(auth.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=get_console(request).secure_cookies,
        path="/",
    )
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/")
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    if _setup_open(request):
        return RedirectResponse("/setup", status_code=303)
    return _form_page(request, "login.html", next=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _checked_form(request)
    console = get_console(request)
    username, next_path = form.get("username", "").strip(), form.get("next", "/")
    client = request.client.host if request.client else "?"
    keys = (f"user:{username}", f"client:{client}")
    wait = console.throttle.retry_after(*keys)
    if wait:
        audit.record(store_of(request), username, "session.login_throttled", client=client)
        message = f"Too many failed log-ins; try again in {wait} s."
        response = _form_page(request, "login.html", 429, error=message, next=next_path)
        response.headers["Retry-After"] = str(wait)
        return response
    if not auth.verify_password(store_of(request), username, form.get("password", "")):
        console.throttle.failed(*keys)
        audit.record(store_of(request), username, "session.login_failed", client=client)
        error = "Wrong user name or password."
        return _form_page(request, "login.html", 401, error=error, next=next_path)
    console.throttle.succeeded(*keys)
    audit.record(store_of(request), username, "session.login", client=client)
    return _logged_in(request, username, next_path)


@router.post("/logout")
async def logout(request: Request, session: auth.Session = Depends(form_csrf)) -> Response:
    client = request.client.host if request.client else None
    audit.record(store_of(request), session.username, "session.logout", client=client)
    auth.end_session(store_of(request), request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@router.get("/setup", response_class=HTMLResponse)
async def setup_page(request: Request) -> Response:
    if not _setup_open(request):
        raise HTTPException(404, "an account exists; log in instead")
    return _form_page(request, "setup.html")


@router.post("/setup")
async def setup(request: Request) -> Response:
    if not _setup_open(request):
        raise HTTPException(404, "an account exists; log in instead")
    form = await _checked_form(request)
    username, password = form.get("username", ""), form.get("password", "")
    if password != form.get("password2"):
        return _form_page(request, "setup.html", 400, error="The passwords differ.")
    try:
        auth.add_user(store_of(request), username, password)
    except ConfigError as e:
        return _form_page(request, "setup.html", 400, error=str(e))
    return _logged_in(request, username.strip(), "/")
