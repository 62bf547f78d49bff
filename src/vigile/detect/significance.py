"""Significance: a rhythm that chance explains is not an alert.

The beacon score (:mod:`vigile.detect.periodicity`) tests each pair's intervals
against the Poisson null hypothesis of unrelated, memoryless connections and keeps
the test's p-value in ``evidence["p_value"]``; the score multiplies by ``1 − p``,
which ranks pairs but lets a pattern that is not significant still reach an alert
when its other factors are high. A person who revisits a news site five times in a
day at a loose rhythm is such a pair: with four or five intervals even a random
sequence lands "on period" often (p of 0.1 to 0.5).

This hunt pass caps a ``beacon`` finding whose p-value is above the conventional 5 %
level at 0.45 (low): it stays listed, ranked among the low findings, with the reason
in the explanation and ``evidence["not_significant"]``. With hundreds of pairs tested
per hunt a looser level would let chance through by the dozen; a beacon with 20 or
more check-ins, even with ±50 % jitter, has a p-value far below 5 %.
"""

from __future__ import annotations

import math

from vigile.detect import Finding, HuntContext

SIGNIFICANCE_LEVEL = 0.05
NOT_SIGNIFICANT_CAP = 0.45


def cap_insignificant_beacons(ctx: HuntContext, findings: list[Finding]) -> list[Finding]:
    """The pass: cap beacon findings whose rhythm is not significant at 5 %."""
    for f in findings:
        p = f.evidence.get("p_value") if f.detector == "beacon" else None
        if p is None or math.isnan(p) or p <= SIGNIFICANCE_LEVEL:
            continue
        if f.score > NOT_SIGNIFICANT_CAP:
            _cap(f, float(p))
    return findings


def _cap(f: Finding, p: float) -> None:
    f.rescore(
        NOT_SIGNIFICANT_CAP,
        "not_significant",
        {"p_value": p, "level": SIGNIFICANCE_LEVEL, "cap": NOT_SIGNIFICANT_CAP},
        f"The rhythm is not significant (p = {p:.2g} against unrelated connections, above "
        f"{SIGNIFICANCE_LEVEL:g}), so the score is capped at {NOT_SIGNIFICANT_CAP:g}",
    )
