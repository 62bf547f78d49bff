"""The sources page: ingested files, their rows, bad rows and where they were."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from vigile.web import queries
from vigile.web.auth import Session
from vigile.web.deps import page_session, store_of
from vigile.web.views import render

router = APIRouter(include_in_schema=False)


@router.get("/sources", response_class=HTMLResponse)
async def sources_page(request: Request, session: Session = Depends(page_session)) -> HTMLResponse:
    data = queries.sources(store_of(request))
    return render(request, "sources.html", session, data=data)
