"""Indicator files for :mod:`vigile.detect.threat_intel`: plain lists, CSV, STIX 2.1.

vigile ships no feed; the user lists files in ``[detectors.threat_intel] files``.
The format is recognised from the content:

* **STIX 2.1 bundle** (JSON whose ``type`` is ``bundle``): every ``indicator``
  object with ``pattern_type`` ``stix`` is parsed with the OASIS ``stix2-patterns``
  parser; ``ipv4-addr:value``/``ipv6-addr:value`` (``=`` or ``ISSUBSET``) and
  ``domain-name:value`` comparisons become indicators (other observables are
  counted as skipped);
* **CSV** (a header row with a column named ``indicator``, ``value``, ``ioc``,
  ``ip``, ``address`` or ``domain``; an optional ``description`` or ``comment``);
* **plain list**: one IP address, CIDR or domain per line; ``#`` starts a comment.

A domain indicator matches the name itself and every name below it
(``evil.example`` matches ``a.evil.example``). A value that is none of an address,
a network or a host name is an error naming the file and line (or STIX object).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stix2patterns.v21.pattern import Pattern

from vigile.config import IPNetwork
from vigile.detect.allowlist import display_path
from vigile.errors import ConfigError

HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")
CSV_VALUE_COLUMNS = ("indicator", "value", "ioc", "ip", "address", "domain")
CSV_LABEL_COLUMNS = ("description", "comment", "label", "name")


@dataclass(frozen=True)
class Indicator:
    """One indicator: its value, where it came from, and what the feed says of it."""

    value: str
    origin: str
    label: str = ""


@dataclass
class IndicatorSet:
    """Addresses, networks and domains to match, each with its indicator."""

    addresses: dict[str, Indicator] = field(default_factory=dict)
    networks: list[tuple[IPNetwork, Indicator]] = field(default_factory=list)
    domains: dict[str, Indicator] = field(default_factory=dict)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.addresses) + len(self.networks) + len(self.domains)

    def add(self, value: str, origin: str, label: str = "") -> None:
        """Classify ``value`` and keep it; raises ConfigError naming ``origin``."""
        text = value.strip().strip("[]").rstrip(".").lower()
        ind = Indicator(text, origin, label)
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            if not HOSTNAME.match(text):
                raise ConfigError(f"{origin}: {value!r} is not an IP, CIDR or domain") from None
            self.domains[text] = ind
            return
        if net.num_addresses == 1:
            self.addresses[str(net.network_address)] = ind
        else:
            self.networks.append((net, ind))

    def match_address(self, address: str | None) -> Indicator | None:
        """The indicator covering an address, if any.

        >>> s = IndicatorSet(); s.add("203.0.113.0/24", "t:1")
        >>> s.match_address("203.0.113.9").value, s.match_address("8.8.8.8")
        ('203.0.113.0/24', None)
        """
        if not address:
            return None
        if address in self.addresses:
            return self.addresses[address]
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        return next((i for n, i in self.networks if ip.version == n.version and ip in n), None)

    def match_name(self, name: str | None) -> Indicator | None:
        """The indicator for a name or its nearest listed parent domain."""
        if not name:
            return None
        labels = name.rstrip(".").lower().split(".")
        for k in range(len(labels) - 1):
            hit = self.domains.get(".".join(labels[k:]))
            if hit is not None:
                return hit
        return None


def load_indicator_files(paths: list[Path], base: Path | None = None) -> IndicatorSet:
    """Read every indicator file into one set; origins are named relative to ``base``."""
    found = IndicatorSet()
    for full in paths:
        path = Path(display_path(full, base))
        try:
            text = full.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read indicator file: {e}") from None
        head = text.lstrip()[:1]
        if head == "{":
            _read_stix(path, text, found)
        elif _looks_like_csv(text):
            _read_csv(path, text, found)
        else:
            _read_plain(path, text, found)
    return found


def _read_plain(path: Path, text: str, found: IndicatorSet) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if value:
            found.add(value.split()[0], f"{path}:{n}")


def _looks_like_csv(text: str) -> bool:
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    cols = [c.strip().lower() for c in first.split(",")]
    return "," in first and any(c in CSV_VALUE_COLUMNS for c in cols)


def _read_csv(path: Path, text: str, found: IndicatorSet) -> None:
    lines = [ln for ln in text.splitlines(keepends=True) if not ln.startswith("#")]
    reader = csv.DictReader(io.StringIO("".join(lines)))
    fields = {f.strip().lower(): f for f in reader.fieldnames or ()}
    value_col = next(fields[c] for c in CSV_VALUE_COLUMNS if c in fields)
    label_col = next((fields[c] for c in CSV_LABEL_COLUMNS if c in fields), None)
    for row in reader:
        value = (row.get(value_col) or "").strip()
        if value:
            label = (row.get(label_col) or "") if label_col else ""
            found.add(value, f"{path}:{reader.line_num}", label.strip())


def _read_stix(path: Path, text: str, found: IndicatorSet) -> None:
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise ConfigError(f"{path}: JSON indicator files must be STIX 2.1 bundles")
    for n, obj in enumerate(bundle.get("objects", [])):
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        origin = f"{path}: objects[{n}] {obj.get('id', '')}".rstrip()
        if obj.get("pattern_type", "stix") != "stix":
            found.skipped += 1
            continue
        label = str(obj.get("name") or obj.get("description") or "")
        for value in _stix_values(obj.get("pattern"), origin, found):
            found.add(value, origin, label)


def _stix_values(pattern: Any, origin: str, found: IndicatorSet) -> list[str]:
    try:
        comparisons = Pattern(str(pattern)).inspect().comparisons
    except Exception as e:  # the parser raises its own ParseException, or ANTLR errors
        raise ConfigError(f"{origin}: bad STIX pattern {pattern!r}: {e}") from None
    values = []
    for obj_type, items in comparisons.items():
        for path, op, raw in items:
            usable = obj_type in ("ipv4-addr", "ipv6-addr", "domain-name") and path == ["value"]
            if usable and op in ("=", "ISSUBSET"):
                values.append(str(raw).strip("'"))
            else:
                found.skipped += 1
    return values
