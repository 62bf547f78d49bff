"""The finding page: the explanation, every evidence number, and its plots."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from vigile.web import charts, queries
from vigile.web.auth import Session
from vigile.web.deps import page_session, store_of
from vigile.web.views import render

router = APIRouter(include_in_schema=False)


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
async def finding_page(
    request: Request, finding_id: str, session: Session = Depends(page_session)
) -> HTMLResponse:
    found = queries.find_finding(store_of(request), finding_id)
    if found is None:
        raise HTTPException(404, f"no finding {finding_id}")
    return render(request, "finding.html", session, finding=found, charts=charts.chart_kinds(found))
