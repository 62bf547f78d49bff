"""The console's JSON API, which its pages use; its OpenAPI schema is at /api/openapi.json.

Every endpoint needs a session cookie (401 without one); every state-changing one
also needs the session's CSRF token in the ``X-CSRF-Token`` header (403 without it).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from vigile.vault.listing import MessageQuery
from vigile.web import allowlist, audit, backups, charts, hosts, queries
from vigile.web.auth import Session
from vigile.web.deps import api_csrf, api_session, get_console, store_of

router = APIRouter(prefix="/api", tags=["console"], dependencies=[Depends(api_session)])


class EntryIn(BaseModel):
    """An allowlist entry as sent by the client (semantics in vigile.detect.allowlist)."""

    kind: Literal["cidr", "domain", "wildcard"] = Field(description="What `value` is.")
    value: str = Field(description="Network (CIDR), exact name, or `*.name` wildcard.")
    reason: str = Field(description="Why it is allowed (required).")
    detector: str | None = Field(None, description="Only this detector; null for all.")


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/me", summary="Who is logged in, and the CSRF token for state changes")
async def me(session: Session = Depends(api_session)) -> dict[str, Any]:
    return {"username": session.username, "csrf_token": session.csrf_token}


@router.get("/overview", summary="Ranked hosts, findings per detector, what is ingested")
async def overview(request: Request) -> dict[str, Any]:
    c = get_console(request)
    return queries.overview(store_of(request), c.config)


@router.get("/hosts", summary="Hosts ranked by their highest unsuppressed finding")
async def ranked_hosts(request: Request) -> list[dict[str, Any]]:
    c = get_console(request)
    return queries.ranked_hosts(store_of(request), c.config)


@router.get("/hosts/{host}", summary="A host: role and evidence, findings, top destinations")
async def host_detail(request: Request, host: str) -> dict[str, Any]:
    c = get_console(request)
    detail = hosts.host_detail(store_of(request), c.config, host)
    if detail is None:
        raise HTTPException(404, f"no traffic or finding for host {host}")
    return detail


@router.get("/hosts/{host}/traffic", summary="Bytes a host sent and received per hour")
async def host_traffic_series(request: Request, host: str) -> dict[str, Any]:
    return hosts.host_traffic(store_of(request), host)


@router.get("/findings", summary="Findings ranked, optionally for one host")
async def findings(request: Request, host: str | None = None) -> list[dict[str, Any]]:
    store = store_of(request)
    return queries.host_findings(store, host) if host else queries.load_findings(store)


def _finding(request: Request, finding_id: str) -> dict[str, Any]:
    found = queries.find_finding(store_of(request), finding_id)
    if found is None:
        raise HTTPException(404, f"no finding {finding_id}")
    return found


@router.get("/findings/{finding_id}", summary="A finding with all its evidence and its plots")
async def finding(request: Request, finding_id: str) -> dict[str, Any]:
    found = _finding(request, finding_id)
    return {**found, "charts": charts.chart_kinds(found)}


@router.get("/findings/{finding_id}/charts/{kind}", summary="The data of one plot of a finding")
async def finding_chart(request: Request, finding_id: str, kind: str) -> dict[str, Any]:
    found = _finding(request, finding_id)
    if kind not in charts.chart_kinds(found):
        raise HTTPException(404, f"finding {finding_id} has no {kind} plot")
    return charts.chart_data(store_of(request), found, kind)


@router.get("/sources", summary="Ingested inputs with rows and bad rows, and where bad rows are")
async def sources(request: Request) -> dict[str, Any]:
    return queries.sources(store_of(request))


@router.get("/allowlist", summary="Allowlist entries with how many findings each suppresses")
async def list_allowlist(request: Request) -> list[dict[str, Any]]:
    store = store_of(request)
    counts = queries.suppression_counts(store)
    return [
        allowlist.entry_json(e, counts.get(e.entry_id, 0)) for e in allowlist.list_entries(store)
    ]


@router.post("/allowlist", status_code=201, summary="Add an allowlist entry")
async def add_allowlist(
    request: Request, body: EntryIn, session: Session = Depends(api_csrf)
) -> dict[str, Any]:
    entry = allowlist.add_entry(
        store_of(request),
        session.username,
        body.kind,
        body.value,
        body.reason,
        body.detector,
        _client(request),
    )
    return allowlist.entry_json(entry)


@router.put("/allowlist/{entry_id}", summary="Change an allowlist entry")
async def edit_allowlist(
    request: Request, entry_id: str, body: EntryIn, session: Session = Depends(api_csrf)
) -> dict[str, Any]:
    entry = allowlist.edit_entry(
        store_of(request),
        session.username,
        entry_id,
        body.kind,
        body.value,
        body.reason,
        body.detector,
        _client(request),
    )
    return allowlist.entry_json(entry)


@router.delete("/allowlist/{entry_id}", status_code=204, summary="Remove an allowlist entry")
async def remove_allowlist(
    request: Request, entry_id: str, session: Session = Depends(api_csrf)
) -> None:
    allowlist.remove_entry(store_of(request), session.username, entry_id, _client(request))


@router.get("/audit", summary="The audit log (allowlist changes, log-ins), newest first")
async def audit_log(request: Request) -> list[dict[str, Any]]:
    return audit.entries(store_of(request))


@router.get("/backups", summary="Mail vault: each account's last backup and state, last verify")
async def backup_status(request: Request) -> dict[str, Any]:
    return backups.vault_status(get_console(request).config)


@router.get("/backups/{account}/snapshots", summary="The snapshots of an account, newest first")
async def backup_snapshots(request: Request, account: str) -> list[dict[str, Any]]:
    found = backups.account_snapshots(get_console(request).config, account)
    if found is None:
        raise HTTPException(404, f"no account {account} in the vault or the configuration")
    return found


@router.get(
    "/backups/{account}/snapshots/{snapshot}",
    summary="A snapshot: its folders and the CLI commands that restore it",
)
async def backup_snapshot(request: Request, account: str, snapshot: str) -> dict[str, Any]:
    found = backups.snapshot_detail(get_console(request).config, account, snapshot)
    if found is None:
        raise HTTPException(404, f"no snapshot {snapshot} of account {account}")
    return found


@router.get(
    "/backups/{account}/snapshots/{snapshot}/messages",
    summary="The messages of a snapshot's folder (or, searching, of every folder), by UID: "
    "date, sender, subject, size, flags, record id",
)
async def backup_messages(
    request: Request,
    account: str,
    snapshot: str,
    folder: str | None = Query(None, description="The folder; every folder if not given."),
    match: str = Query("", max_length=200, description="Sender or subject contains (any case)."),
    sender: str = Query("", alias="from", max_length=200, description="Sender contains."),
    subject: str = Query("", max_length=200, description="Subject contains."),
    offset: int = Query(0, ge=0),
    limit: int = Query(500, ge=1, le=5000),
) -> dict[str, Any]:
    c = get_console(request)
    query = MessageQuery(match, sender, subject)
    if folder is None and not query:
        raise HTTPException(400, "give a folder, or search with match, from or subject")
    found = backups.folder_messages(c.config, account, snapshot, folder, offset, limit, query)
    if found is None:
        raise HTTPException(404, f"no folder {folder} in snapshot {snapshot} of {account}")
    return found


@router.get("/openapi.json", summary="This API's OpenAPI schema", include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema
