"""Build the console's FastAPI application over a store.

The application writes its own state to the store (accounts, sessions, allowlist,
audit log, ``findings.suppressed_by``) but holds the file only while it answers a
request (:mod:`vigile.web.access`), so ingests and hunts run beside it. Everything
it serves, plotly.js included, comes from the installed package: no page loads
anything from elsewhere, and the Content-Security-Policy header forbids it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import import_module, resources
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.trustedhost import TrustedHostMiddleware

from vigile import __version__
from vigile.config import Config
from vigile.detect import subject_text
from vigile.errors import ConfigError
from vigile.web import api
from vigile.web.access import StoreAccess, StoreBusyError
from vigile.web.allowlist import EntryNotFoundError, apply_entries
from vigile.web.backups import VaultUnavailableError
from vigile.web.deps import Console, LoginRequiredError, request_store
from vigile.web.views import VIEWS

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the pinned ``plotly`` package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def make_templates() -> Jinja2Templates:
    """The Jinja2 templates (autoescaped) with the filters the pages use."""
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.filters["bytes"] = human_bytes
    env.filters["pct"] = lambda v: f"{100 * float(v or 0):.1f} %"
    env.filters["ts"] = utc_text
    env.filters["age"] = age_text
    env.filters["evidence"] = evidence_text
    env.globals["version"] = __version__
    env.globals["subject"] = lambda f: subject_text(f["detector"], f["src"], f["dst"], f["fqdn"])
    return templates


def evidence_text(value: object) -> str:
    """An evidence value as `vigile explain` and the JSON API show it: lists and tables
    as JSON (Python's ``[{'peer': …}]`` and ``None`` mean nothing to a reader), nothing
    as ``-``.

    >>> evidence_text([{"peer": "10.0.0.1", "score": 0.8}]), evidence_text(None)
    ('[{"peer": "10.0.0.1", "score": 0.8}]', '-')
    """
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def utc_text(value: object) -> str:
    """A time as the pages show it: to the second, in UTC, said so.

    Times with an offset are converted; times without one are the store's, which keeps UTC.

    >>> from datetime import datetime, timedelta, timezone
    >>> utc_text(datetime(2026, 11, 23, 9, 30, 5, 123, tzinfo=timezone(timedelta(hours=2))))
    '2026-11-23 07:30:05 UTC'
    >>> utc_text("2026-11-23T09:30:05-05:00"), utc_text(datetime(2026, 11, 23, 9, 30))
    ('2026-11-23 14:30:05 UTC', '2026-11-23 09:30:00 UTC')
    >>> utc_text(None)
    '-'
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
    elif isinstance(value, datetime):
        when = value
    else:
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def human_bytes(value: object) -> str:
    """Bytes in binary units.

    >>> human_bytes(1536), human_bytes(None)
    ('1.5 KiB', '-')
    """
    if value is None:
        return "-"
    n = float(str(value))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def age_text(hours: float | None) -> str:
    """A time since, in hours, as people say it.

    >>> age_text(0.2), age_text(5.51), age_text(49), age_text(None)
    ('12 min', '5 h 31 min', '2 d 1 h', '-')
    """
    if hours is None:
        return "-"
    minutes = round(hours * 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} d {minutes % 1440 // 60} h"


async def _security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    # Pages hold private data: never cached. Static files (plotly.js is 4.8 MB) may be.
    static = request.url.path.startswith("/static/")
    response.headers["Cache-Control"] = "private, max-age=3600" if static else "no-store"
    return response


#: Host headers accepted when the console listens on a loopback address. Refusing others
#: stops DNS-rebinding pages from talking to the console through the user's browser.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(
    access: StoreAccess,
    config: Config,
    *,
    secure_cookies: bool = False,
    allow_setup: bool = False,
    allowed_hosts: Sequence[str] = ("*",),
) -> FastAPI:
    """The console over the store ``access`` opens; it re-applies the allowlist first.

    Args:
        access: opens the store per request (the console writes its own state there).
        config: the network model.
        secure_cookies: mark cookies ``Secure`` (the console is served over TLS).
        allow_setup: open the first-account page while no account exists.
        allowed_hosts: Host header values accepted (``*``: any).
    """
    app = FastAPI(
        title="vigile console API",
        version=__version__,
        description="The JSON API behind the vigile console pages.",
        docs_url=None,  # Swagger UI and ReDoc load their code from a CDN: not offered.
        redoc_url=None,
        openapi_url=None,  # served at /api/openapi.json behind the login instead
        # Every route opens the store for its request; static files (below) do not.
        dependencies=[Depends(request_store, scope="function")],
    )
    app.state.console = Console(access, config, make_templates(), secure_cookies, allow_setup)
    store = access.open(write=True)
    try:
        apply_entries(store)
    finally:
        store.close()

    async def plotly_js(request: Request) -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="text/javascript")

    app.add_route("/static/plotly.min.js", plotly_js, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    for module in VIEWS:
        app.include_router(import_module(module).router)
    app.add_middleware(BaseHTTPMiddleware, dispatch=_security_headers)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.exception_handler(LoginRequiredError)
    async def to_login(request: Request, exc: LoginRequiredError) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(StoreBusyError)
    async def store_busy(request: Request, exc: StoreBusyError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"detail": str(exc)}, status_code=503, headers=headers)
        templates = app.state.console.templates
        # The page reloads itself once the wait is over (a long ingest holds the store).
        ctx = {"status": 503, "detail": str(exc), "session": None, "reload": exc.retry_after}
        return templates.TemplateResponse(request, "error.html", ctx, 503, headers=headers)

    @app.exception_handler(VaultUnavailableError)
    async def vault_unavailable(request: Request, exc: VaultUnavailableError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        if request.url.path.startswith("/api/"):
            body = {"detail": str(exc), "state": exc.state}
            return JSONResponse(body, status_code=503, headers=headers)
        templates = app.state.console.templates
        ctx = {"status": 503, "detail": str(exc), "session": None, "reload": exc.retry_after}
        return templates.TemplateResponse(request, "error.html", ctx, 503, headers=headers)

    @app.exception_handler(EntryNotFoundError)
    async def not_found(request: Request, exc: EntryNotFoundError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConfigError)
    async def bad_request(request: Request, exc: ConfigError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        templates = app.state.console.templates
        ctx = {"status": exc.status_code, "detail": exc.detail, "session": None}
        return templates.TemplateResponse(request, "error.html", ctx, exc.status_code)

    return app


def openapi_text() -> str:
    """The API's OpenAPI schema as ``docs/openapi.json`` holds it (``python -m vigile.web.app``)."""
    import json

    schema = create_app(StoreAccess(":memory:"), Config()).openapi()
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(openapi_text(), end="")
