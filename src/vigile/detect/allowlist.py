"""Allowlists and built-in priors: which findings are expected, and why.

This module is the one place that defines an allowlist entry; the hunt pass that
suppresses findings and the console that lets a user suppress one both use it.

Contract of an entry (:class:`AllowEntry`):

* exactly one rule: ``cidr`` (an IP network, or one address) or ``domain``;
* ``reason`` is required: a suppression always says why;
* ``detectors`` limits the entry to those detectors (default: every detector);
* ``ref`` (``source#n``) names the entry stably: ``n`` is its 1-based position in
  its file, ``source`` is the file path or ``priors:<category>``;
* ``Finding.suppressed_by`` holds :attr:`AllowEntry.label`
  (``"<ref> <rule> (<reason>)"``); a suppressed finding is kept, not deleted.

Entries added in the console (table ``allowlist_entries``) are the same entries,
built by :func:`console_entry` from a kind and a value: ``cidr`` (a network or an
address), ``domain`` (one exact name) or ``wildcard`` (``*.`` and a name; not the
name itself), scoped to one detector or all. Their label, and so ``suppressed_by``,
is their id ``console:<n>``, so the console only ever rewrites suppressions it made;
they match a finding's ends and ``fqdn`` only (not the names seen for an address,
which the console does not have when it applies them). The hunt applies them after
the files and priors; among themselves the lowest id wins.

Domain rule semantics (table-tested in ``tests/test_allowlist.py``); names are
compared lower-case and without a trailing dot:

==================  =====================  ======================  ==================
rule                ``example.com``        ``a.example.com``       ``a.b.example.com``
==================  =====================  ======================  ==================
``example.com``     yes                    no                      no
``*.example.com``   **no**                 yes                     yes
``.example.com``    yes                    yes                     yes
==================  =====================  ======================  ==================

``*`` stands for one or more whole labels and is only allowed as the leftmost
label; ``a*.example.com`` is refused. A CIDR rule matches a finding when either
end (``src`` or ``dst``) is inside it. A domain rule matches a finding whose
``fqdn`` it covers; for a finding that names only an address, it matches when the
address has names seen in the window (DNS answers, TLS SNI, HTTP Host) and every
one of them is covered by a rule in scope, so that a shared CDN address that also
served an unknown name is not silenced.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from vigile.config import IPNetwork
from vigile.detect import Finding, HuntContext
from vigile.detect.traffic import bounds, names_by_address
from vigile.errors import ConfigError
from vigile.store import Store, Window

PRIORS_RESOURCE = "priors.toml"
CONSOLE_PREFIX = "console:"
CONSOLE_KINDS = ("cidr", "domain", "wildcard")


def normalise_name(name: str) -> str:
    """Lower-case, no trailing dot.

    >>> normalise_name("WWW.Example.COM.")
    'www.example.com'
    """
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist or priors entry: a rule, its scope and the reason for it."""

    rule: str
    reason: str
    source: str
    index: int
    detectors: frozenset[str] | None = None
    category: str | None = None
    #: Set for entries made in the console (``console:<n>``): their label.
    entry_id: str | None = None

    @property
    def ref(self) -> str:
        """Stable name of the entry: ``source#n``, or a console entry's id."""
        return self.entry_id or f"{self.source}#{self.index}"

    @property
    def label(self) -> str:
        """The text stored in ``findings.suppressed_by``."""
        if self.entry_id is not None:
            return self.entry_id
        return f"{self.ref} {self.rule} ({self.reason})"

    @cached_property
    def network(self) -> IPNetwork | None:
        """The IP network of a CIDR rule, else ``None`` (parsed once)."""
        if not self.rule[:1].isdigit() and ":" not in self.rule:
            return None
        try:
            return ipaddress.ip_network(self.rule, strict=False)
        except ValueError:
            return None

    def applies_to(self, detector: str) -> bool:
        """True if the entry's scope includes ``detector``."""
        return self.detectors is None or detector in self.detectors

    def covers_name(self, name: str) -> bool:
        """True if this domain rule covers ``name`` (see the table above).

        >>> e = AllowEntry("*.example.com", "x", "t", 1)
        >>> e.covers_name("example.com"), e.covers_name("a.b.Example.com.")
        (False, True)
        """
        name = normalise_name(name)
        rule = self.rule
        if rule.startswith("*."):
            return name.endswith(rule[1:])
        if rule.startswith("."):
            return name == rule[1:] or name.endswith(rule)
        return name == rule

    def covers_address(self, address: str | None) -> bool:
        """True if this CIDR rule contains ``address``."""
        net = self.network
        if net is None or address is None:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return ip.version == net.version and ip in net


def parse_entry(item: Any, source: str, index: int, category: str | None = None) -> AllowEntry:
    """Check one ``[[allow]]`` table and build its entry; errors name source and entry."""
    where = f"{source}: entry {index}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(item) - {"cidr", "domain", "reason", "detectors"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if ("cidr" in item) == ("domain" in item):
        raise ConfigError(f"{where}: give exactly one of cidr or domain")
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where}: a reason is required")
    scope = item.get("detectors")
    if scope is not None and (
        not isinstance(scope, list) or not all(isinstance(d, str) for d in scope)
    ):
        raise ConfigError(f"{where}: detectors must be a list of detector names")
    if "cidr" in item:
        try:
            rule = str(ipaddress.ip_network(str(item["cidr"]), strict=False))
        except ValueError:
            raise ConfigError(f"{where}: {item['cidr']!r} is not an IP network") from None
    else:
        rule = _check_domain(str(item["domain"]), where)
    detectors = frozenset(scope) if scope is not None else None
    return AllowEntry(rule, reason.strip(), source, index, detectors, category)


def _check_domain(domain: str, where: str) -> str:
    rule = normalise_name(domain)
    body = rule[2:] if rule.startswith("*.") else rule.lstrip(".")
    if not body or "*" in body or ".." in body or rule.startswith(".."):
        raise ConfigError(
            f"{where}: {domain!r}: '*' is allowed only as the whole leftmost label (*.example.com)"
        )
    return rule


def console_rule(kind: str, value: str) -> str:
    """Check a console entry's value and return its canonical rule, or raise ConfigError.

    >>> console_rule("cidr", "10.1.2.3"), console_rule("wildcard", "*.Example.COM.")
    ('10.1.2.3/32', '*.example.com')
    """
    value = value.strip()
    if kind == "cidr":
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(f"{value!r} is not an IP address or network (CIDR)") from None
    if kind not in ("domain", "wildcard"):
        raise ConfigError(f"unknown allowlist kind {kind!r}; use one of {', '.join(CONSOLE_KINDS)}")
    name = normalise_name(value)
    if kind == "wildcard":
        if not name.startswith("*.") or "*" in name[2:] or len(name) < 4:
            raise ConfigError(f"{value!r}: a wildcard is '*.' followed by a name")
    elif not name or "*" in name or " " in name or name.startswith("."):
        raise ConfigError(f"{value!r} is not a domain name")
    return _check_domain(name, repr(value))


def console_entry(
    entry_id: str, kind: str, value: str, reason: str, detector: str | None = None
) -> AllowEntry:
    """The entry of a console rule (a row of ``allowlist_entries``).

    >>> e = console_entry("console:1", "wildcard", "*.example.com", "CDN")
    >>> e.covers_name("a.b.example.com"), e.covers_name("example.com"), e.label
    (True, False, 'console:1')
    """
    number = entry_id.removeprefix(CONSOLE_PREFIX)
    index = int(number) if number.isdigit() else 0
    scope = frozenset([detector]) if detector else None
    rule = console_rule(kind, value)
    return AllowEntry(rule, reason, "console", index, scope, entry_id=entry_id)


def _entries_from_toml(text: str, source: str) -> list[AllowEntry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: {e}") from None
    entries: list[AllowEntry] = []
    priors = data.get("priors", {})
    if not isinstance(priors, dict):
        raise ConfigError(f"{source}: priors must be a table of lists of [[priors.<category>]]")
    for category, items in priors.items():
        for item in _tables(items, source, f"priors.{category}"):
            entries.append(parse_entry(item, f"priors:{category}", len(entries) + 1, category))
    for item in _tables(data.get("allow", []), source, "allow"):
        entries.append(parse_entry(item, source, len(entries) + 1))
    return entries


def _tables(items: Any, source: str, name: str) -> list[Any]:
    """The ``[[name]]`` entries of a file; refused unless they are a list."""
    if not isinstance(items, list):
        raise ConfigError(f"{source}: {name} must be a list of tables ([[{name}]])")
    return items


def load_priors() -> list[AllowEntry]:
    """The built-in priors shipped in ``vigile/data/priors.toml``."""
    text = (resources.files("vigile") / "data" / PRIORS_RESOURCE).read_text(encoding="utf-8")
    return _entries_from_toml(text, "priors")


def load_allowlist_file(path: Path, base: Path | None = None) -> list[AllowEntry]:
    """Entries of a user allowlist file (TOML with ``[[allow]]`` tables); entries are
    named by the path relative to ``base`` (the config file's folder) when inside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read allowlist: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text at byte {e.start}") from None
    return _entries_from_toml(text, display_path(path, base))


def display_path(path: Path, base: Path | None) -> str:
    """``path`` relative to ``base`` when it lies inside it, else as given.

    >>> display_path(Path("/etc/vigile/allow.toml"), Path("/etc/vigile"))
    'allow.toml'
    """
    if base is not None:
        try:
            return str(path.relative_to(base))
        except ValueError:
            pass
    return str(path)


@dataclass(frozen=True)
class Allowlist:
    """Entries in order: user entries first, then priors; the first match wins."""

    entries: tuple[AllowEntry, ...]
    _scoped: dict[str, list[AllowEntry]] = field(default_factory=dict, compare=False, repr=False)
    _by_names: dict[tuple[str, frozenset[str]], AllowEntry | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_config(
        cls, files: Sequence[Path], options: Mapping[str, Any], base: Path | None = None
    ) -> Allowlist:
        """User files plus priors, unless ``priors = false``; ``disable_priors`` drops
        priors by category or by ref (``priors:cdn#3``)."""
        entries = [e for f in files for e in load_allowlist_file(f, base)]
        if options.get("priors", True):
            off = options.get("disable_priors", [])
            if not isinstance(off, list) or not all(isinstance(o, str) for o in off):
                raise ConfigError("[allowlist] disable_priors must be a list of categories or refs")
            entries += [e for e in load_priors() if e.category not in off and e.ref not in off]
        return cls(tuple(entries))

    def match(
        self,
        detector: str,
        ends: Iterable[str | None],
        fqdn: str | None,
        names_of: Mapping[str, frozenset[str]],
    ) -> AllowEntry | None:
        """The first entry that suppresses a finding of ``detector`` about these ends."""
        scoped = self._scoped.get(detector)
        if scoped is None:
            scoped = self._scoped[detector] = [e for e in self.entries if e.applies_to(detector)]
        present = [a for a in ends if a]
        for entry in scoped:
            if entry.network is not None and any(entry.covers_address(a) for a in present):
                return entry
            if entry.network is None and fqdn and entry.covers_name(fqdn):
                return entry
        if fqdn:
            return None
        for address in present:
            names = names_of.get(address, frozenset())
            key = (detector, names)
            if key not in self._by_names:
                self._by_names[key] = _cover_all(scoped, names)
            if self._by_names[key] is not None:
                return self._by_names[key]
        return None


def _cover_all(entries: Sequence[AllowEntry], names: frozenset[str]) -> AllowEntry | None:
    """The entry covering the first name, if every name is covered by some entry (entries
    made in the console match names of a finding only, see the module docstring)."""
    first = None
    by_name = [e for e in entries if e.network is None and e.entry_id is None]
    for name in sorted(names):
        hit = next((e for e in by_name if e.covers_name(name)), None)
        if hit is None:
            return None
        first = first or hit
    return first


def suppress_allowlisted(ctx: HuntContext, findings: list[Finding]) -> list[Finding]:
    """The allowlist pass: mark findings an entry covers (``suppressed_by``), keep them all.

    File entries and priors come first, then the entries added in the console, so that
    a hunt keeps the console's suppressions instead of waiting for the console to
    re-apply them.
    """
    base = ctx.config.path.parent if ctx.config.path else None
    allow = Allowlist.from_config(ctx.config.allowlist_files, ctx.config.section("allowlist"), base)
    allow = Allowlist(allow.entries + tuple(stored_console_entries(ctx.store)))
    if allow.entries:
        names = names_by_address(ctx.store, Window(*bounds(ctx)))
        for f in findings:
            if f.suppressed_by is None:
                entry = allow.match(f.detector, (f.src, f.dst), f.fqdn, names)
                if entry is not None:
                    f.suppressed_by = entry.label
    return findings


def stored_console_entries(store: Store) -> list[AllowEntry]:
    """The console's entries (table ``allowlist_entries``), lowest id first."""
    rows = store.scan("allowlist_entries").to_pylist()
    entries = [
        console_entry(r["entry_id"], r["kind"], r["value"], r["reason"], r["detector"])
        for r in rows
    ]
    return sorted(entries, key=lambda e: (e.index, e.ref))
