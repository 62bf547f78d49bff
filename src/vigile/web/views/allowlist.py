"""The allowlist page: entries with their reasons, a form to add or edit, the audit log.

Adding, editing and removing go through the JSON API (``static/console.js``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from vigile.web import allowlist, audit, queries
from vigile.web.auth import Session
from vigile.web.deps import page_session, store_of
from vigile.web.views import render

router = APIRouter(include_in_schema=False)


@router.get("/allowlist", response_class=HTMLResponse)
async def allowlist_page(
    request: Request, session: Session = Depends(page_session)
) -> HTMLResponse:
    store = store_of(request)
    counts = queries.suppression_counts(store)
    entries = [
        allowlist.entry_json(e, counts.get(e.entry_id, 0)) for e in allowlist.list_entries(store)
    ]
    detectors = [d["detector"] for d in queries.detector_counts(store)]
    return render(
        request,
        "allowlist.html",
        session,
        entries=entries,
        audit=audit.entries(store),
        detectors=detectors,
        prefill=dict(request.query_params),
    )
