"""The host page: role and its evidence, findings, bytes over time, top destinations."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from vigile.web import hosts
from vigile.web.auth import Session
from vigile.web.deps import get_console, page_session, store_of
from vigile.web.views import render

router = APIRouter(include_in_schema=False)


@router.get("/hosts/{host}", response_class=HTMLResponse)
async def host_page(
    request: Request, host: str, session: Session = Depends(page_session)
) -> HTMLResponse:
    c = get_console(request)
    detail = hosts.host_detail(store_of(request), c.config, host)
    if detail is None:
        raise HTTPException(404, f"no traffic or finding for host {host}")
    return render(request, "host.html", session, host=detail)
