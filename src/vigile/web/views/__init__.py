"""The console's pages, one module per page; each has a ``router``.

Pages are rendered on the server from the same functions the JSON API returns;
their plots and allowlist changes go through the JSON API from ``static/console.js``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from vigile.web.auth import Session
from vigile.web.deps import get_console

#: View modules, in the order their routes are added.
VIEWS = (
    "vigile.web.views.login",
    "vigile.web.views.overview",
    "vigile.web.views.host",
    "vigile.web.views.finding",
    "vigile.web.views.allowlist",
    "vigile.web.views.sources",
    "vigile.web.views.backups",
    "vigile.web.views.report",
)


def render(
    request: Request, template: str, session: Session | None, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    """A page from ``templates/`` with the session (user, CSRF token) in its context."""
    templates = get_console(request).templates
    return templates.TemplateResponse(
        request, template, {"session": session, **ctx}, status_code=status_code
    )
