"""The HTML report as a download: the file ``vigile report --html`` writes, from the browser."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from vigile.web.auth import Session
from vigile.web.deps import get_console, page_session, store_of
from vigile.web.report import render_report

router = APIRouter(include_in_schema=False)


@router.get("/report.html", response_class=HTMLResponse)
async def report_download(
    request: Request, top: int = 5, _: Session = Depends(page_session)
) -> HTMLResponse:
    c = get_console(request)
    name = f"vigile-report-{datetime.now(UTC):%Y%m%d-%H%M}.html"
    return HTMLResponse(
        render_report(store_of(request), c.config, max(1, min(top, 50))),
        # A download, not a page: the console's own CSP would block the report's inline code.
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
