"""threat_intel: traffic to or from listed addresses and names.

Indicators come from the files in ``[detectors.threat_intel] files`` (paths relative
to the config file; formats in :mod:`vigile.detect.indicators`). Matched, in the
window: connection ends (``conn``), DNS queries and the addresses they resolved to
(``dns``), HTTP Host headers (``http``) and TLS SNI (``tls``).

=========================================================  =====
match                                                      score
=========================================================  =====
an internal host reached a listed address, or a listed     0.95
name by HTTP Host or TLS SNI, and got an answer
an internal host looked up a listed name                   0.9
an internal host reached a listed address, no answer       0.85
a listed address reached an internal host and was answered 0.85
a listed address reached an internal host, no answer       0.6
=========================================================  =====
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import ClassVar

from vigile.detect import Finding, HuntContext
from vigile.detect.indicators import Indicator, IndicatorSet, load_indicator_files
from vigile.detect.traffic import bounds, internal_lookup
from vigile.store import Agg, Window


def configured_indicators(ctx: HuntContext) -> IndicatorSet:
    """Load the files named in the config (none: an empty set)."""
    files = ctx.config.section("detectors.threat_intel").get("files", [])
    base = ctx.config.path.parent if ctx.config.path else Path()
    return load_indicator_files([base / str(f) for f in files], base)


class ThreatIntelDetector:
    """Connections, look-ups, Host headers and SNI matching the user's indicator files."""

    name: ClassVar[str] = "threat_intel"
    tables: ClassVar[tuple[str, ...]] = ("conn", "dns", "http", "tls")
    summary: ClassVar[str] = "Traffic to or from addresses and names in indicator files."

    def run(self, ctx: HuntContext) -> list[Finding]:
        intel = configured_indicators(ctx)
        if not len(intel):
            return []
        window = Window(*bounds(ctx))
        hits: dict[tuple[str, str | None, str | None], list[tuple[float, str, Indicator]]]
        hits = defaultdict(list)
        self._conn(ctx, intel, window, hits)
        self._names(ctx, intel, window, hits)
        out = []
        start, end = window.start, window.end
        assert start is not None and end is not None
        for (src, dst, fqdn), found in sorted(hits.items(), key=lambda kv: str(kv[0])):
            found.sort(key=lambda h: -h[0])
            score, _, ind = found[0]
            what = "; ".join(dict.fromkeys(h[1] for h in found))
            label = f" ({ind.label})" if ind.label else ""
            text = f"Indicator {ind.value}{label} from {ind.origin}: {what}."
            evidence = {
                "indicator": ind.value,
                "origin": ind.origin,
                "label": ind.label,
                "matches": [h[1] for h in found],
            }
            out.append(Finding(self.name, src, dst, fqdn, score, start, end, text, evidence))
        return out

    def _conn(self, ctx: HuntContext, intel: IndicatorSet, window: Window, hits: dict) -> None:
        rows = ctx.store.group(
            "conn",
            ["src", "dst"],
            [Agg("count", None, "n"), Agg("max", "resp_payload", "answered")],
            window=window,
        )
        internal = internal_lookup(ctx)
        for r in rows.to_pylist():
            answered = bool(r["answered"])
            n = int(r["n"])
            if (ind := intel.match_address(r["dst"])) and internal(r["src"]):
                score = 0.95 if answered else 0.85
                what = f"{r['src']} connected to {r['dst']} {n} time(s)"
            elif (ind := intel.match_address(r["src"])) and internal(r["dst"]):
                score = 0.85 if answered else 0.6
                what = f"{r['src']} connected to internal {r['dst']} {n} time(s)"
            else:
                continue
            what += ", answered" if answered else ", never answered"
            hits[(r["src"], r["dst"], None)].append((score, what, ind))

    def _names(self, ctx: HuntContext, intel: IndicatorSet, window: Window, hits: dict) -> None:
        dns = ctx.store.scan("dns", ["src", "query", "answers"], window=window)
        for src, query, answers in zip(
            *(dns.column(c).to_pylist() for c in ("src", "query", "answers")), strict=True
        ):
            if ind := intel.match_name(query):
                hits[(src, None, query)].append((0.9, f"{src} looked up {query}", ind))
            for a in answers or ():
                if ind := intel.match_address(a):
                    hits[(src, a, query)].append((0.9, f"{query} resolved to listed {a}", ind))
        for table, col, what in (("http", "host", "HTTP Host"), ("tls", "sni", "TLS SNI")):
            rows = ctx.store.group(
                table, ["src", "dst", col], [Agg("count", None, "n")], window=window
            )
            for r in rows.to_pylist():
                if ind := intel.match_name(r[col]):
                    text = f"{r['src']} sent {what} {r[col]} to {r['dst']} {r['n']} time(s)"
                    hits[(r["src"], r["dst"], r[col])].append((0.95, text, ind))
