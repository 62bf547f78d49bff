"""Allowlist entries: the shape of a suppression rule and what it matches.

An entry says "findings about this destination are expected", with a reason. It
never deletes a finding: a matching finding keeps its score and gets
``findings.suppressed_by`` set to the entry's id, so suppressions stay visible.

Contract of an entry (:class:`AllowlistEntry`):

* ``kind = "cidr"``: ``value`` is an IPv4 or IPv6 network (a bare address is a /32 or
  /128). It matches a finding whose ``dst`` **or** ``src`` address lies inside it.
* ``kind = "domain"``: ``value`` is one exact name. It matches a finding whose
  ``fqdn`` equals it, compared lower-case without a trailing dot. It does not cover
  subdomains.
* ``kind = "wildcard"``: ``value`` is ``*.`` followed by a name. It matches every
  name *below* that name at any depth (``*.example.com`` matches ``a.example.com``
  and ``a.b.example.com``) but **not** ``example.com`` itself; add a domain entry
  for that.
* ``detector``: ``None`` applies to every detector; otherwise only to findings whose
  ``detector`` equals it.
* ``reason`` is required: a suppression nobody can explain is not kept.
* ``entry_id`` is stable and is what ``findings.suppressed_by`` holds. Entries made
  in the console have ids ``console:<n>``; other sources (allowlist files) use
  their own prefix, so the console only ever rewrites suppressions it made.

When several entries match, the first in id order wins, so results are reproducible.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigile.errors import ConfigError

KINDS = ("cidr", "domain", "wildcard")
CONSOLE_PREFIX = "console:"


@dataclass(frozen=True)
class AllowlistEntry:
    """One suppression rule (see the module contract)."""

    entry_id: str
    kind: str
    value: str
    reason: str
    detector: str | None = None
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def matches(self, finding: Mapping[str, Any]) -> bool:
        """Whether this entry covers a finding (a ``findings`` row as a mapping).

        >>> e = AllowlistEntry("console:1", "wildcard", "*.example.com", "CDN")
        >>> e.matches({"fqdn": "a.b.example.com"}), e.matches({"fqdn": "example.com"})
        (True, False)
        >>> AllowlistEntry("console:2", "cidr", "192.0.2.0/24", "lab").matches(
        ...     {"src": "10.0.0.1", "dst": "192.0.2.9"})
        True
        """
        if self.detector is not None and finding.get("detector") != self.detector:
            return False
        if self.kind == "cidr":
            net = ipaddress.ip_network(self.value)
            return any(_in(finding.get(side), net) for side in ("dst", "src"))
        name = _name(finding.get("fqdn"))
        if name is None:
            return False
        if self.kind == "domain":
            return name == self.value
        return name.endswith(self.value[1:])  # "*.example.com" -> ".example.com"


def normalise(kind: str, value: str) -> str:
    """Check an entry's value and return its canonical form, or raise ConfigError.

    >>> normalise("cidr", "10.1.2.3"), normalise("wildcard", "*.Example.COM.")
    ('10.1.2.3/32', '*.example.com')
    """
    value = value.strip()
    if kind == "cidr":
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(f"{value!r} is not an IP address or network (CIDR)") from None
    if kind not in ("domain", "wildcard"):
        raise ConfigError(f"unknown allowlist kind {kind!r}; use one of {', '.join(KINDS)}")
    name = _name(value) or ""
    if kind == "wildcard":
        if not name.startswith("*.") or "*" in name[2:] or len(name) < 4:
            raise ConfigError(f"{value!r}: a wildcard is '*.' followed by a name")
        return name
    if not name or "*" in name or " " in name:
        raise ConfigError(f"{value!r} is not a domain name")
    return name


def match_findings(
    entries: Iterable[AllowlistEntry], findings: Iterable[Mapping[str, Any]]
) -> dict[str, str | None]:
    """Which entry (if any) suppresses each finding, by finding id; first id wins."""
    ordered = sorted(entries, key=_order)
    result: dict[str, str | None] = {}
    for f in findings:
        result[f["id"]] = next((e.entry_id for e in ordered if e.matches(f)), None)
    return result


def _order(entry: AllowlistEntry) -> tuple[str, int, str]:
    prefix, _, number = entry.entry_id.rpartition(":")
    return (prefix, int(number) if number.isdigit() else 0, number)


def _in(address: Any, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return ip.version == net.version and ip in net


def _name(value: Any) -> str | None:
    if not value:
        return None
    return str(value).strip().lower().rstrip(".") or None
