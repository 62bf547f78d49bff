"""Allowlist entries made in the console, their audit log, and applying them.

Each change (add, edit, remove) is written in one store transaction together with
its audit-log row and the findings it suppresses or releases, so the three never
disagree. A console entry is an allowlist entry like those of allowlist files: its
semantics (kinds ``cidr``, ``domain``, ``wildcard``; scope; which entry wins) are
defined once, in :mod:`vigile.detect.allowlist`; this module keeps the stored row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigile.detect.allowlist import CONSOLE_PREFIX, AllowEntry, Allowlist, console_entry
from vigile.detect.allowlist import console_rule as normalise
from vigile.errors import ConfigError
from vigile.store import Pred, StateWriter, Store
from vigile.web import audit
from vigile.web.queries import plain


@dataclass(frozen=True)
class AllowlistEntry:
    """One row of ``allowlist_entries``: a console rule with who made it and when."""

    entry_id: str
    kind: str
    value: str
    reason: str
    detector: str | None = None
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def rule(self) -> AllowEntry:
        """The allowlist entry this row stands for."""
        return console_entry(self.entry_id, self.kind, self.value, self.reason, self.detector)

    def matches(self, finding: Mapping[str, Any]) -> bool:
        """Whether this entry covers a finding (a ``findings`` row as a mapping).

        >>> e = AllowlistEntry("console:1", "wildcard", "*.example.com", "CDN")
        >>> e.matches({"fqdn": "a.b.example.com"}), e.matches({"fqdn": "example.com"})
        (True, False)
        """
        return match_findings([self], [{"id": "", **finding}])[""] is not None


def match_findings(
    entries: Iterable[AllowlistEntry], findings: Iterable[Mapping[str, Any]]
) -> dict[str, str | None]:
    """Which entry (if any) suppresses each finding, by finding id; the lowest id wins."""
    rules = sorted((e.rule() for e in entries), key=lambda r: (r.index, r.ref))
    allow = Allowlist(tuple(rules))
    result: dict[str, str | None] = {}
    for f in findings:
        hit = allow.match(str(f.get("detector")), (f.get("src"), f.get("dst")), f.get("fqdn"), {})
        result[f["id"]] = hit.label if hit is not None else None
    return result


class EntryNotFoundError(ConfigError):
    """No allowlist entry has that id."""


def list_entries(store: Store) -> list[AllowlistEntry]:
    """Every console entry, in id order."""
    rows = store.scan("allowlist_entries").to_pylist()
    entries = [AllowlistEntry(**r) for r in rows]
    return sorted(entries, key=lambda e: int(e.entry_id.removeprefix(CONSOLE_PREFIX)))


def entry_json(entry: AllowlistEntry, suppressed: int | None = None) -> dict[str, Any]:
    """An entry as the API shows it."""
    out = {k: plain(v) for k, v in entry.__dict__.items()}
    if suppressed is not None:
        out["suppressed"] = suppressed
    return out


def _validated(kind: str, value: str, reason: str, detector: str | None) -> dict[str, Any]:
    if not reason.strip():
        raise ConfigError("say why this is allowed: the reason is required")
    return {
        "kind": kind,
        "value": normalise(kind, value),
        "reason": reason.strip(),
        "detector": (detector or "").strip() or None,
    }


def _apply(store: Store, writer: StateWriter, entries: list[AllowlistEntry]) -> None:
    """Suppress what the entries match; release what only a removed console entry did."""
    findings = store.scan("findings", ["id", "detector", "src", "dst", "fqdn", "suppressed_by"])
    rows = findings.to_pylist()
    matches = match_findings(entries, rows)
    changes: dict[str, str | None] = {}
    for f in rows:
        current, new = f["suppressed_by"], matches[f["id"]]
        ours = current is None or current.startswith(CONSOLE_PREFIX)
        if ours and new != current:
            changes[f["id"]] = new
    writer.set_suppressed(changes)


def apply_entries(store: Store, writer: StateWriter | None = None) -> None:
    """Bring ``findings.suppressed_by`` in line with the entries (e.g. after a hunt),
    inside ``writer``'s transaction when one is given, else in one of its own."""
    if writer is not None:
        _apply(store, writer, list_entries(store))
        return
    with store.state_writer() as w:
        _apply(store, w, list_entries(store))


def add_entry(
    store: Store,
    user: str,
    kind: str,
    value: str,
    reason: str,
    detector: str | None = None,
    client: str | None = None,
) -> AllowlistEntry:
    """Add an entry, suppress what it matches, and log who did it."""
    fields = _validated(kind, value, reason, detector)
    existing = list_entries(store)
    number = max((int(e.entry_id.removeprefix(CONSOLE_PREFIX)) for e in existing), default=0) + 1
    now = datetime.now(UTC)
    entry = AllowlistEntry(
        f"{CONSOLE_PREFIX}{number}", **fields, created_by=user, created_at=now, updated_at=now
    )
    with store.state_writer() as w:
        w.insert("allowlist_entries", [entry.__dict__])
        _apply(store, w, [*existing, entry])
        audit.write(w, user, "allowlist.add", entry.entry_id, {"after": entry_json(entry)}, client)
    return entry


def _get(entries: list[AllowlistEntry], entry_id: str) -> AllowlistEntry:
    for e in entries:
        if e.entry_id == entry_id:
            return e
    raise EntryNotFoundError(f"no allowlist entry {entry_id!r}")


def edit_entry(
    store: Store,
    user: str,
    entry_id: str,
    kind: str,
    value: str,
    reason: str,
    detector: str | None = None,
    client: str | None = None,
) -> AllowlistEntry:
    """Change an entry, re-apply every entry, and log the before and after."""
    entries = list_entries(store)
    before = _get(entries, entry_id)
    fields = _validated(kind, value, reason, detector)
    after = AllowlistEntry(
        entry_id,
        **fields,
        created_by=before.created_by,
        created_at=before.created_at,
        updated_at=datetime.now(UTC),
    )
    detail = {"before": entry_json(before), "after": entry_json(after)}
    with store.state_writer() as w:
        w.update(
            "allowlist_entries",
            [Pred("entry_id", "=", entry_id)],
            fields | {"updated_at": after.updated_at},
        )
        _apply(store, w, [after if e.entry_id == entry_id else e for e in entries])
        audit.write(w, user, "allowlist.edit", entry_id, detail, client)
    return after


def remove_entry(store: Store, user: str, entry_id: str, client: str | None = None) -> None:
    """Remove an entry, release the findings only it suppressed, and log it."""
    entries = list_entries(store)
    before = _get(entries, entry_id)
    with store.state_writer() as w:
        w.delete("allowlist_entries", [Pred("entry_id", "=", entry_id)])
        _apply(store, w, [e for e in entries if e.entry_id != entry_id])
        audit.write(w, user, "allowlist.remove", entry_id, {"before": entry_json(before)}, client)
