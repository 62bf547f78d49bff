"""A hunt: run detectors in order, keep their findings, summarise, report.

This sits between the CLI/console and the detectors so both front ends run a hunt
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vigile.detect import Detector, Finding, HuntContext, findings_table
from vigile.detect.allowlist import suppress_allowlisted
from vigile.detect.keepalive import cap_single_session_beacons
from vigile.detect.score import HOST_DETECTOR, PAIR_DETECTOR, score_pairs_and_hosts
from vigile.detect.shared_service import mark_shared_services
from vigile.detect.significance import cap_insignificant_beacons
from vigile.store import Agg, FindingScope, Store, Window

#: A pass takes every finding so far and returns the findings to keep (it may mark,
#: add or reorder them). Passes run in this order after the detectors:
#: beacons whose rhythm is not significant and beacons that are one session's
#: keep-alives first; shared services and monitoring next, so they are counted over
#: every source even where an allowlist covers some; allowlists then, so suppressed
#: findings never raise a pair's or a host's score.
Pass = Callable[[HuntContext, list[Finding]], list[Finding]]
PASSES: tuple[Pass, ...] = (
    cap_insignificant_beacons,
    cap_single_session_beacons,
    mark_shared_services,
    suppress_allowlisted,
    score_pairs_and_hosts,
)
#: Detector names under which the passes store the findings they add.
PASS_FINDINGS = (PAIR_DETECTOR, HOST_DETECTOR)


def rank(findings: list[Finding]) -> list[Finding]:
    """Highest score first; at equal score a detector's own finding before the pair and
    host scores built on it, and those by their unclamped weight; suppressed findings
    after every unsuppressed one."""

    def key(f: Finding) -> tuple[bool, float, bool, float, str, str, str]:
        derived = f.detector in PASS_FINDINGS
        weight = float(f.evidence.get("weight", 0.0)) if derived else 0.0
        return (
            f.suppressed_by is not None,
            -f.score,
            derived,
            -weight,
            f.detector,
            f.src or "",
            f.dst or "",
        )

    return sorted(findings, key=key)


def run_detectors(ctx: HuntContext, detectors: Sequence[type[Detector]]) -> list[Finding]:
    """Run each detector, then the passes; store the findings and return them ranked."""
    findings: list[Finding] = []
    for detector_cls in detectors:
        findings.extend(detector_cls().run(ctx))
    if detectors:
        for step in PASSES:
            findings = step(ctx, findings)
    findings = rank(findings)
    names = [d.name for d in detectors] + (list(PASS_FINDINGS) if detectors else [])
    # The findings of earlier hunts over other windows stay: see Store.replace_findings.
    ctx.store.replace_findings(names, findings_table(findings), FindingScope(None, ctx.window))
    return findings


def top_talkers(store: Store, window: Window, limit: int = 10) -> list[dict[str, Any]]:
    """Pairs that sent the most bytes in the window (the summary shown without detectors)."""
    table = store.group(
        "conn",
        ["src", "dst"],
        [
            Agg("count", None, "connections"),
            Agg("sum", "orig_ip_bytes", "bytes_out"),
            Agg("sum", "resp_ip_bytes", "bytes_in"),
        ],
        window=window,
        order_by=["bytes_out"],
        descending=True,
        limit=limit,
    )
    return table.to_pylist()


def write_report(
    path: Path,
    ctx: HuntContext,
    detectors: Sequence[type[Detector]],
    findings: Sequence[Finding],
    talkers: Sequence[dict[str, Any]],
) -> None:
    """A Markdown report of the hunt: window, detectors run, ranked findings."""
    w = ctx.window
    lines = [
        "# vigile hunt report",
        "",
        f"Store: `{ctx.store.location}`  ",
        f"Window: {w.start} → {w.end} ({ctx.window_kind})  ",
        f"Detectors: {', '.join(d.name for d in detectors) or 'none registered'}",
        "",
    ]
    if not detectors:
        lines += [
            "No detectors are registered, so nothing was scored.",
            "",
            "## Top talkers",
            "",
            "| src | dst | connections | bytes out | bytes in |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {t['src']} | {t['dst']} | {t['connections']} | {t['bytes_out']} | {t['bytes_in']} |"
            for t in talkers
        ]
    else:
        lines += [f"## Findings ({len(findings)})", ""]
        for position, f in enumerate(findings, 1):
            subject = f.subject
            lines += [
                f"### {position}. {f.severity} {f.score:.3f} — {f.detector}: {subject}",
                "",
                f.explanation,
                "",
                *([f"Suppressed by {f.suppressed_by}.", ""] if f.suppressed_by else []),
                f"Finding id `{f.id}`.",
                "",
            ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
