"""Domain-name helpers: registered domains from the Public Suffix List, label statistics.

The Public Suffix List comes from the ``publicsuffixlist`` package, which ships the
list inside the wheel: nothing is downloaded at run time. Private suffixes
(``blogspot.com``, ``s3.amazonaws.com``) count as suffixes, so each customer's
subdomain is its own registered domain, which keeps shared hosting from looking like
one domain with thousands of subdomains.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

_PSL = PublicSuffixList()


@lru_cache(maxsize=1 << 18)
def registered_domain(name: str) -> str | None:
    """The registrable domain of ``name`` (None for a bare suffix or an invalid name).

    >>> registered_domain("a.b.example.co.uk"), registered_domain("co.uk")
    ('example.co.uk', None)
    """
    name = name.strip(".").lower()
    if not name or ".." in name:
        return None
    return _PSL.privatesuffix(name)


def subdomain_part(name: str, domain: str) -> str:
    """What precedes the registered domain.

    >>> subdomain_part("x1.y2.example.com", "example.com")
    'x1.y2'
    """
    return name[: -len(domain)].rstrip(".") if name.endswith(domain) else ""


def exploded(name: str, domain: str) -> list[str]:
    """The domain and every longer suffix of ``name`` at a label boundary.

    RITA v5's ``exploded_dns`` counts these (``database/tables.go``).

    >>> exploded("a.b.example.com", "example.com")
    ['example.com', 'b.example.com', 'a.b.example.com']
    """
    labels = subdomain_part(name, domain).split(".") if name != domain else []
    out = [domain]
    for label in reversed([x for x in labels if x]):
        out.append(f"{label}.{out[-1]}")
    return out


def entropy(text: str) -> float:
    """Shannon entropy in bits per character.

    >>> entropy("aaaa"), entropy("abcd")
    (0.0, 2.0)
    """
    if not text:
        return 0.0
    n = len(text)
    return abs(-sum(c / n * math.log2(c / n) for c in Counter(text).values()))


def randomness(label: str) -> float:
    """Entropy relative to its maximum for the label's length (0 repetitive, 1 all distinct).

    >>> randomness("vocyzit"), round(randomness("google"), 2)
    (1.0, 0.74)
    """
    if len(label) < 2:
        return 0.0
    return entropy(label) / math.log2(min(len(label), 36))
