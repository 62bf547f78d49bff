"""The overview page: hosts ranked by score, findings per detector, what is ingested, and
one line on the mail vault's backups."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from vigile.web import backups, queries
from vigile.web.auth import Session
from vigile.web.deps import get_console, page_session, store_of
from vigile.web.views import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request, session: Session = Depends(page_session)) -> HTMLResponse:
    c = get_console(request)
    data = queries.overview(store_of(request), c.config)
    # One line on the mail vault, when one is configured (it opens the vault: see backups).
    vault = backups.summary(backups.vault_status(c.config)) if c.config.section("vault") else None
    return render(request, "overview.html", session, data=data, vault=vault)
