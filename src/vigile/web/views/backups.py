"""The Backups pages: each account's last backup, its snapshots, a snapshot's folders,
its messages (searched by sender and subject) and the commands that restore one.

Read-only: the vault is opened for each page and closed before it is sent
(:mod:`vigile.web.backups`). Restoring stays a CLI action; a snapshot's page shows the
exact commands.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from vigile.vault.listing import MessageQuery
from vigile.web import backups
from vigile.web.auth import Session
from vigile.web.deps import get_console, page_session
from vigile.web.views import render

router = APIRouter(include_in_schema=False)

#: Messages shown per page of a folder.
PAGE = 500


@router.get("/backups", response_class=HTMLResponse)
async def backups_page(request: Request, session: Session = Depends(page_session)) -> HTMLResponse:
    status = backups.vault_status(get_console(request).config)
    return render(request, "backups.html", session, status=status)


@router.get("/backups/{account}", response_class=HTMLResponse)
async def account_page(
    request: Request, account: str, session: Session = Depends(page_session)
) -> HTMLResponse:
    snapshots = backups.account_snapshots(get_console(request).config, account)
    if snapshots is None:
        raise HTTPException(404, f"no account {account} in the vault or the configuration")
    return render(request, "backup_account.html", session, account=account, snapshots=snapshots)


@router.get("/backups/{account}/{snapshot}", response_class=HTMLResponse)
async def snapshot_page(
    request: Request,
    account: str,
    snapshot: str,
    folder: str | None = None,
    offset: int = Query(0, ge=0),
    q: str = Query("", max_length=200),
    message: str | None = Query(None, max_length=64),
    session: Session = Depends(page_session),
) -> HTMLResponse:
    config = get_console(request).config
    query = MessageQuery(q.strip())
    detail, messages = backups.snapshot_page(config, account, snapshot, folder, offset, PAGE, query)
    if detail is None:
        raise HTTPException(404, f"no snapshot {snapshot} of account {account}")
    if folder is not None and messages is None:
        raise HTTPException(404, f"no folder {folder} in snapshot {snapshot}")
    one = None
    if message is not None:
        one = backups.message_restore(config, account, snapshot, folder or "", message.lower())
        if one is None:
            raise HTTPException(404, f"no message {message} in {folder} of snapshot {snapshot}")
    return render(
        request,
        "backup_snapshot.html",
        session,
        snap=detail,
        messages=messages,
        page=PAGE,
        folder=folder,
        q=query.text,
        message=one,
    )
