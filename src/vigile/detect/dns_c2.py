"""C2 over DNS: tunnels (many unique subdomains of one domain) and DGA hosts.

Two findings, both from the ``dns`` table:

* **Tunnel / C2 over DNS, per registered domain.** RITA v5 counts the unique
  subdomains of each registered domain, every level of each name included
  (``exploded_dns`` in ``database/tables.go``), flags 100 or more, and scores them
  with its bucketed steps 100 -> 0.2, 500 -> 0.4, 800 -> 0.6, 1000 -> 0.8
  (``c2_score_thresholds``); that is ``rita_c2_score`` here. vigile's score adds the
  shape of the names that tunnels cannot avoid (Born & Gustafson, *Detecting DNS
  tunnels using character frequency analysis*, 2010; Farnham, *Detecting DNS
  Tunneling*, SANS 2013): long labels, high character entropy, and TXT/NULL/CNAME
  records that carry the payload back:
  ``volume = min(1, unique / 100)``,
  ``shape = max(min(1, mean length / 30) x min(1, mean entropy / 4), record share)``,
  ``score = volume x (0.4 + 0.6 x shape)``.
* **DGA, per host.** Malware that generates domain names (Simda, Conficker,
  Necurs) looks up many names that do not exist: ``score = min(1, failing / 40) x
  (0.6 + 0.4 x randomness)``, where ``failing`` counts distinct registered domains
  answered NXDOMAIN and ``randomness`` is the mean normalised character entropy of
  their first label (Antonakakis et al., *From Throw-Away Traffic to Bots*, USENIX
  Security 2012, use NXDOMAIN clusters the same way).

Registered domains come from the Public Suffix List (:mod:`vigile.detect.domains`);
``.arpa`` and local-only names are skipped, as RITA does.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import Finding, HuntContext
from vigile.detect.domains import entropy, exploded, randomness, registered_domain, subdomain_part
from vigile.store import Pred

RITA_C2_STEPS = ((100.0, 0.2), (500.0, 0.4), (800.0, 0.6), (1000.0, 0.8))
TUNNEL_MIN_SUBDOMAINS = 20
PAYLOAD_TYPES = frozenset({"TXT", "NULL", "CNAME"})
PAYLOAD_QTYPES = frozenset({16, 10, 5})  # the same by number, when a source has no names
DGA_MIN_FAILING = 10
DGA_FULL_FAILING = 40
REPORT_SCORE = 0.3
LOCAL_SUFFIXES = (".arpa", ".local", ".localdomain", ".internal", ".lan", ".home")
NXDOMAIN = 3


def rita_c2_score(subdomains: int) -> float:
    """RITA's bucketed C2-over-DNS score.

    >>> rita_c2_score(99), rita_c2_score(100), rita_c2_score(300), rita_c2_score(5000)
    (0.0, 0.2, 0.3, 0.8)
    """
    if subdomains < RITA_C2_STEPS[0][0]:
        return 0.0
    xs, ys = zip(*RITA_C2_STEPS, strict=True)
    return round(float(np.interp(subdomains, xs, ys)), 6)


class DnsC2Detector:
    """DNS tunnels per registered domain, and hosts looking up generated domains."""

    name: ClassVar[str] = "dns_c2"
    tables: ClassVar[tuple[str, ...]] = ("dns",)
    summary: ClassVar[str] = "DNS tunnels (unique subdomains, long random labels) and DGA hosts."

    def run(self, ctx: HuntContext) -> list[Finding]:
        t = ctx.store.scan(
            "dns",
            ["src", "query", "qtype_name", "qtype", "rcode"],
            window=ctx.window,
            where=[Pred("query", "is not null")],
        )
        if not t.num_rows:
            return []
        by_domain, failing, queried = _tally(t)
        first, last = ctx.store.time_bounds("dns")
        start, end = ctx.window.start or first, ctx.window.end or last
        assert start is not None and end is not None  # the table has rows
        win = (start, end)
        out = [f for dom, d in by_domain.items() if (f := _tunnel(dom, d, win, ctx)) is not None]
        out += [f for src, doms in failing.items() if (f := _dga(src, doms, queried, win, ctx))]
        return out


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """Per row the index of its value in the distinct values (first-seen order)."""
    encoded = pc.dictionary_encode(col, null_encoding="encode").combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def _first_seen(table: pa.Table, keys: list[str]) -> pa.Table:
    """Distinct ``keys`` with their row count and first row ``i``, in first-seen order."""
    g = table.group_by(keys, use_threads=False).aggregate([("i", "min"), ("i", "count")])
    return g.sort_by("i_min")


def _tally(
    t: pa.Table,
) -> tuple[dict[str, dict[str, Any]], dict[Any, set[str]], dict[Any, set[str]]]:
    """Per registered domain its names, lookups, payload records, NXDOMAINs and queriers;
    per host the domains that failed and the domains it queried.

    Whole-column Arrow group-bys over integer codes (a loop over the rows in Python
    took seconds per million lookups); names, queriers and domains are collected in
    the order they were first seen, so the sets and counters come out as a row-by-row
    loop builds them.
    """
    query, names = _codes(t.column("query"))
    src_code, srcs = _codes(t.column("src"))
    domain_names = [_domain(n) for n in names]
    domains = list(dict.fromkeys(d for d in domain_names if d is not None))
    code_of = {d: i for i, d in enumerate(domains)}
    name_domain = np.array([-1 if d is None else code_of[d] for d in domain_names] + [-1])
    payload = pc.or_(
        pc.is_in(t.column("qtype_name"), value_set=pa.array(sorted(PAYLOAD_TYPES))),
        pc.is_in(t.column("qtype"), value_set=pa.array(sorted(PAYLOAD_QTYPES), pa.int32())),
    ).fill_null(False)
    nx = pc.equal(t.column("rcode"), NXDOMAIN).fill_null(False)
    rows = pa.table(
        {
            "i": np.arange(t.num_rows),
            "d": name_domain[query],
            "q": query,
            "s": src_code.astype(np.int64),
            "payload": payload.combine_chunks().cast(pa.int64()),
            "nx": nx.combine_chunks(),
        }
    )
    rows = rows.filter(pc.greater_equal(rows.column("d"), 0))
    per_domain = rows.group_by(["d"], use_threads=False).aggregate(
        [("i", "min"), ("i", "count"), ("payload", "sum"), ("nx", "sum"), ("q", "count_distinct")]
    )
    wide = per_domain.filter(
        pc.greater_equal(per_domain.column("q_count_distinct"), TUNNEL_MIN_SUBDOMAINS)
    )
    wide = wide.sort_by("i_min")
    wanted = pc.is_in(rows.column("d"), value_set=wide.column("d"))
    by_domain: dict[str, dict[str, Any]] = {}
    for r in wide.to_pylist():
        by_domain[domains[r["d"]]] = {
            "names": set(),
            "queries": r["i_count"],
            "payload": r["payload_sum"],
            "nx": r["nx_sum"],
            "src": Counter(),
        }
    for r in _first_seen(rows.filter(wanted), ["d", "q"]).to_pylist():
        by_domain[domains[r["d"]]]["names"].add(names[r["q"]])
    for r in _first_seen(rows.filter(wanted), ["d", "s"]).to_pylist():
        by_domain[domains[r["d"]]]["src"][srcs[r["s"]]] = r["i_count"]
    failing: dict[Any, set[str]] = {}
    for r in _first_seen(rows.filter(rows.column("nx")), ["s", "d"]).to_pylist():
        failing.setdefault(srcs[r["s"]], set()).add(domains[r["d"]])
    many = [srcs.index(s) for s, doms in failing.items() if len(doms) >= DGA_MIN_FAILING]
    queried: dict[Any, set[str]] = {}
    mine = rows.filter(pc.is_in(rows.column("s"), value_set=pa.array(many, pa.int64())))
    for r in mine.group_by(["s", "d"], use_threads=False).aggregate([]).to_pylist():
        queried.setdefault(srcs[r["s"]], set()).add(domains[r["d"]])
    return by_domain, failing, queried


def _domain(name: str) -> str | None:
    name = name.lower().strip(".")
    if "." not in name or name.endswith(LOCAL_SUFFIXES):
        return None
    return registered_domain(name)


def _tunnel(
    domain: str, d: dict[str, Any], win: tuple[datetime, datetime], ctx: HuntContext
) -> Finding | None:
    if len(d["names"]) < TUNNEL_MIN_SUBDOMAINS:
        return None
    levels = {x for n in d["names"] for x in exploded(n, domain)}
    unique = len(levels) - 1  # the registered domain itself is not a subdomain
    subs = [subdomain_part(n, domain) for n in d["names"]]
    subs = [s for s in subs if s]
    mean_len = float(np.mean([len(s) for s in subs])) if subs else 0.0
    mean_entropy = float(np.mean([entropy(s.replace(".", "")) for s in subs])) if subs else 0.0
    payload_share = d["payload"] / d["queries"]
    shape = max(min(1.0, mean_len / 30) * min(1.0, mean_entropy / 4), payload_share)
    score = min(1.0, unique / 100) * (0.4 + 0.6 * shape)
    rita = rita_c2_score(unique)
    if score < REPORT_SCORE and rita == 0.0:
        return None
    src, n_top = d["src"].most_common(1)[0]
    ev = {
        "unique_subdomains": unique,
        "queries": d["queries"],
        "mean_subdomain_length": round(mean_len, 1),
        "mean_subdomain_entropy": round(mean_entropy, 3),
        "payload_record_share": round(payload_share, 3),
        "nxdomain_rate": round(d["nx"] / d["queries"], 3),
        "queriers": len(d["src"]),
        "top_querier_queries": n_top,
        "rita_c2_score": rita,
        "window": ctx.window_kind,
    }
    text = (
        f"{domain} has {unique:,} unique subdomains in {d['queries']:,} lookups "
        f"(mean label length {mean_len:.0f}, entropy {mean_entropy:.1f} bits/char, "
        f"{100 * payload_share:.0f} % TXT/NULL/CNAME), mostly from {src}."
    )
    return Finding("dns_c2", src, None, domain, score, win[0], win[1], text, ev)


def _dga(
    src: str,
    doms: set[str],
    queried: dict[str, set[str]],
    win: tuple[datetime, datetime],
    ctx: HuntContext,
) -> Finding | None:
    if len(doms) < DGA_MIN_FAILING:
        return None
    rand = float(np.mean([randomness(d.split(".")[0]) for d in doms]))
    score = min(1.0, len(doms) / DGA_FULL_FAILING) * (0.6 + 0.4 * rand)
    if score < REPORT_SCORE:
        return None
    examples = sorted(doms)[:5]
    ev = {
        "failing_domains": len(doms),
        "queried_domains": len(queried[src]),
        "failing_share": round(len(doms) / len(queried[src]), 3),
        "randomness": round(rand, 3),
        "examples": examples,
        "window": ctx.window_kind,
    }
    text = (
        f"{src} looked up {len(doms)} domains that do not exist (NXDOMAIN) out of "
        f"{len(queried[src])} it queried, random-looking names such as "
        f"{', '.join(examples[:3])}: a domain generation algorithm (DGA)."
    )
    return Finding("dns_c2", src, None, None, score, win[0], win[1], text, ev)
