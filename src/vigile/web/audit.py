"""The console's audit log: who did what, when and from where. Rows are only added.

Recorded actions: ``allowlist.add``, ``allowlist.edit``, ``allowlist.remove`` (with
the entry before and after, written in the same transaction as the change), and
``session.login``, ``session.login_failed``, ``session.login_throttled``,
``session.logout``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from vigile.store import StateWriter, Store
from vigile.web.queries import plain


def write(
    writer: StateWriter,
    user: str,
    action: str,
    target: str | None = None,
    detail: Any = None,
    client: str | None = None,
) -> None:
    """Add one row inside a transaction the caller holds."""
    row = {
        "ts": datetime.now(UTC),
        "username": user or "-",
        "action": action,
        "target": target,
        "detail": None if detail is None else json.dumps(detail, default=str, sort_keys=True),
        "client": client,
    }
    writer.insert("audit_log", [row])


def record(
    store: Store, user: str, action: str, target: str | None = None, client: str | None = None
) -> None:
    """Add one row in its own transaction."""
    with store.state_writer() as w:
        write(w, user, action, target, None, client)


def entries(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The newest rows first."""
    rows = store.scan("audit_log").to_pylist()
    rows.sort(key=lambda r: r["ts"], reverse=True)
    return [{k: plain(v) for k, v in r.items()} for r in rows[:limit]]
