"""Beacons: hosts that call home on a schedule.

Every IP pair and FQDN pair (see :mod:`vigile.detect.pairs`) with at least four
connections gets two scores side by side:

* ``rita_*``: RITA v5's beacon score, re-implemented for parity
  (:mod:`vigile.detect.rita`);
* ``score``: vigile's own jitter-tolerant periodicity score
  (:mod:`vigile.detect.periodicity`), which is the finding's score.

A pair is reported when vigile's score is at least 0.3. With ``rita_parity = true``
under ``[detectors.beacon]`` in vigile.toml, every pair RITA would list (RITA score
>= 0.5, its lowest reporting threshold) is reported too, whatever vigile's score: RITA
rates Poisson-like background highly, so this is off by default to stay quiet. Pairs
with 86,400 or more connections are strobes and are left to :mod:`vigile.detect.strobe`,
as RITA does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from vigile.detect import Finding, HuntContext
from vigile.detect.pairs import (
    PairLists,
    ScoringWindow,
    fqdn_connections,
    fqdn_pairs,
    ip_pairs,
    missing_host,
    scorable,
    scoring_window,
)
from vigile.detect.periodicity import PeriodicityScores, periodicity_scores
from vigile.detect.rita import STROBE_CONNECTIONS, RitaScores, rita_scores

REPORT_SCORE = 0.3
REPORT_RITA_SCORE = 0.5
#: A beacon active this long (or the whole window, if shorter) is fully persistent;
#: RITA's ``duration_consistency_ideal_hours_seen``.
PERSISTENCE_S = 12 * 3600
#: RITA's ``missing_host_count_score_increase`` modifier.
MISSING_HOST_BONUS = 0.1
#: Built-in priors: protocols that poll on a schedule by design.
PRIORS: dict[tuple[str, int], str] = {("udp", 123): "prior: NTP polling (udp/123)"}
PRIOR_FACTOR = 0.2


class BeaconDetector:
    """Periodic check-ins per IP pair and per destination name."""

    name: ClassVar[str] = "beacon"
    tables: ClassVar[tuple[str, ...]] = ("conn", "http", "tls")
    summary: ClassVar[str] = "Hosts that connect on a schedule (jitter-tolerant; RITA v5 parity)."

    def run(self, ctx: HuntContext) -> list[Finding]:
        win = scoring_window(ctx)
        if win is None:
            return []
        names = fqdn_connections(ctx.store, win)
        by_name = fqdn_pairs(ctx.store, win, names)
        scored = names.join(
            by_name.keys.select(["src", "fqdn"]), ["src", "fqdn"], join_type="left semi"
        )
        no_host = missing_host(ctx.store, win)
        out = _findings(ctx, win, by_name, "sni", no_host)
        for by_ip in ip_pairs(ctx.store, win, scored.column("uid").combine_chunks()):
            out += _findings(ctx, win, by_ip, "ip", no_host)
        return out


def _findings(
    ctx: HuntContext,
    win: ScoringWindow,
    pairs: PairLists,
    kind: str,
    no_host: dict[tuple[str, str], tuple[int, str]],
) -> list[Finding]:
    parity = bool(ctx.config.section("detectors.beacon").get("rita_parity", False))
    if not len(pairs.counts):
        return []
    candidates = (pairs.counts < STROBE_CONNECTIONS) & scorable(pairs.keys)
    if not parity:
        # vigile's score is linear-time; RITA's needs sorts, so it runs on candidates only
        own = periodicity_scores(pairs.ts_us // 1000, pairs.orig_bytes, pairs.offsets)
        candidates &= own.valid & (own.score >= REPORT_SCORE)
    pairs = pairs.take(np.flatnonzero(candidates))
    ts_s = pairs.ts_us // 1_000_000
    rita = rita_scores(ts_s, pairs.orig_bytes, pairs.offsets, win.start_s, win.end_s)
    own = periodicity_scores(pairs.ts_us // 1000, pairs.orig_bytes, pairs.offsets)
    notable = own.valid & (own.score >= REPORT_SCORE)
    if parity:
        notable |= rita.valid & (rita.score >= REPORT_RITA_SCORE)
    report = np.flatnonzero(notable)
    keys = pairs.keys.take(pa.array(report, type=pa.int64())).to_pylist()
    net = ctx.config.network
    out = []
    for i, key in zip(report, keys, strict=True):
        start, end = pairs.offsets[i], pairs.offsets[i + 1]
        ev = _evidence(int(i), rita, own, int(pairs.counts[i]), pairs.orig_bytes[start:end])
        ev.update(win.evidence())
        span = float(ts_s[end - 1] - ts_s[start])
        ev["active_span_s"] = span
        ev["persistence"] = round(min(1.0, span / min(PERSISTENCE_S, win.end_s - win.start_s)), 3)
        ev["answered_share"] = float(key.get("answered_share", 1.0))
        if "dst_port" in key:
            ev["proto"], ev["dst_port"] = key["proto"], key["dst_port"]
        ev["pair_kind"] = kind
        lo, hi = own.range_s[i]
        ev["period_range_s"] = [round(lo), round(hi)] if np.isfinite(lo) else None
        ev["direction"] = _direction(net.is_internal(key["src"]), _dst_internal(net, key))
        fqdn = key.get("fqdn")
        dst = key.get("dst")
        if kind == "sni":
            ev["proxy"] = bool(key["proxy"])
            ev["destination_ips"] = int(key["dst_count"])
        else:
            n, ua = no_host.get((key["src"], dst), (0, None))
            ev["missing_host_header"] = int(n)
            ev["missing_host_user_agent"] = ua
        score, suppressed = _final_score(float(own.score[i]) if own.valid[i] else 0.0, ev)
        out.append(
            Finding(
                detector="beacon",
                src=key["src"],
                dst=dst,
                fqdn=fqdn,
                score=score,
                suppressed_by=suppressed,
                window_start=win.rows.start or ctx.window.start,  # type: ignore[arg-type]
                window_end=win.rows.end or ctx.window.end,  # type: ignore[arg-type]
                explanation=_explain(key["src"], fqdn or dst, ev),
                evidence=ev,
            )
        )
    return out


def _final_score(periodicity: float, ev: dict[str, Any]) -> tuple[float, str | None]:
    """Periodicity weighed by persistence, two-way traffic and duty cycle, plus modifiers.

    Each weight maps its share ``x`` in [0, 1] to ``0.5 + 0.5 x``, so a beacon that
    lasts, is answered and rarely misses keeps its periodicity score, and a scanner's
    short burst of unanswered probes keeps an eighth of it.
    """
    checkins = max(ev["checkins"], 1)
    ev["duty_cycle"] = round(checkins / (checkins + ev["missed_checkins"]), 3)
    score = periodicity
    for factor in ("persistence", "answered_share", "duty_cycle"):
        score *= 0.5 + 0.5 * ev[factor]
    if ev.get("missing_host_header"):
        score += MISSING_HOST_BONUS
    ev["periodicity_score"] = round(periodicity, 4)
    prior = PRIORS.get((str(ev.get("proto")), int(ev.get("dst_port") or 0)))
    if prior:
        score *= PRIOR_FACTOR
    return min(score, 1.0), prior


def _dst_internal(net: Any, key: dict[str, Any]) -> bool:
    return bool(key.get("dst")) and net.is_internal(key["dst"])


def _direction(src_internal: bool, dst_internal: bool) -> str:
    if src_internal and dst_internal:
        return "internal"
    if src_internal:
        return "outbound"
    return "inbound" if dst_internal else "external"


def _evidence(
    i: int, rita: RitaScores, own: PeriodicityScores, count: int, orig_bytes: np.ndarray
) -> dict[str, Any]:
    def f(x: Any, nd: int = 3) -> float | None:
        return None if x is None or np.isnan(x) else round(float(x), nd)

    return {
        "connections": int(count),
        "bytes_out": int(orig_bytes.sum()),
        "period_s": f(own.period_s[i], 1),
        "jitter": f(own.jitter[i]),
        "checkins": int(own.checkins[i]),
        "missed_checkins": int(own.missed[i]),
        "connections_per_checkin": f(own.conns_per_checkin[i], 2),
        "on_period_share": f(own.on_share[i]),
        "p_value": float(f"{own.p_value[i]:.3g}"),
        "bytes_per_checkin_mean": f(own.bytes_mean[i], 1),
        "bytes_regularity": f(own.bytes_regularity[i]),
        "rita_scored": bool(rita.valid[i]),
        "rita_score": f(rita.score[i]) if rita.valid[i] else None,
        "rita_ts_score": f(rita.ts_score[i]) if rita.valid[i] else None,
        "rita_ds_score": f(rita.ds_score[i]) if rita.valid[i] else None,
        "rita_dur_score": f(rita.dur_score[i]) if rita.valid[i] else None,
        "rita_hist_score": f(rita.hist_score[i]) if rita.valid[i] else None,
        "rita_ts_skew": f(rita.ts_skew[i]),
        "rita_ts_mad_s": f(rita.ts_mad[i], 1),
        "rita_ds_skew": f(rita.ds_skew[i]),
        "rita_ds_mad_bytes": f(rita.ds_mad[i], 1),
        "rita_hours_seen": int(rita.hours_seen[i]),
        "rita_longest_run_hours": int(rita.longest_run[i]),
        "rita_coverage": f(rita.coverage[i]),
        "rita_consistency": f(rita.consistency[i]),
    }


def _explain(src: str, dst: str, ev: dict[str, Any]) -> str:
    rng = ev["period_range_s"]
    every = f"every {rng[0]}–{rng[1]} s" if rng else "irregularly"
    text = (
        f"{src} → {dst} ({ev['direction']}) checked in {ev['checkins']} times {every} "
        f"in {ev['connections']} connections"
    )
    if ev["period_s"] is not None:
        text += (
            f" (period ≈ {ev['period_s']:g} s, jitter {round(100 * (ev['jitter'] or 0))} %,"
            f" {ev['missed_checkins']} missed)"
        )
    if ev.get("proxy"):
        text += " through a proxy (HTTP CONNECT)"
    if ev.get("missing_host_header"):
        text += (
            f"; {ev['missing_host_header']} HTTP requests had no Host header"
            f" (user agent {ev['missing_host_user_agent']!r})"
        )
    rita = ev["rita_score"]
    return text + (f"; RITA v5 score {rita:.3f}." if rita is not None else ".")
