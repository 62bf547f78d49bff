"""Running an evaluation: ingest labeled data, hunt over its whole span, score.

Detectors are passed in (``vigile eval`` passes every registered one), so an
evaluation can be run on any detector class, including one defined in a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from vigile.config import Config
from vigile.detect import Detector, Finding, HuntContext
from vigile.detect.score import HOST_DETECTOR, PAIR_DETECTOR
from vigile.errors import InputError, Location
from vigile.evaluate import DEFAULT_ALERT_SCORE, DEFAULT_K, EvalResult, score_findings
from vigile.hunt import run_detectors
from vigile.ingest import IngestReport, ingest_paths
from vigile.simulate import Simulation, write_run
from vigile.simulate.scenarios.base import Truth
from vigile.simulate.writers.zeek import ZeekWriter
from vigile.store import Agg, Store, Window


def whole_span(store: Store) -> Window:
    """The window from the oldest to the newest connection (inclusive)."""
    first, last = store.time_bounds("conn")
    if first is None or last is None:
        raise InputError(Location(Path(store.location)), "no connections to evaluate on")
    return Window(first, last + timedelta(microseconds=1))


def count_internal_hosts(store: Store, config: Config) -> int:
    """Distinct internal addresses seen on either side of a connection."""
    seen: set[str] = set()
    for side in ("src", "dst"):
        table = store.group("conn", [side], [Agg("count", None, "n")])
        column = table.column(side)
        mask = config.network.internal_mask(column)
        seen.update(v for v, m in zip(column.to_pylist(), mask.tolist(), strict=True) if m)
    return len(seen)


def hunt_window(
    store: Store,
    config: Config,
    detectors: Sequence[type[Detector]],
    window_hours: float | None = None,
) -> tuple[list[Finding], Window]:
    """Run ``detectors`` over everything in the store as one window, or, with
    ``window_hours``, over the hours ending at the newest connection (as ``vigile hunt``)."""
    window = whole_span(store)
    kind = "the whole evaluated time span"
    if window_hours is not None:
        assert window.end is not None and window.start is not None
        window = Window(max(window.start, window.end - timedelta(hours=window_hours)), window.end)
        kind = f"last {window_hours:g} h ending at the newest connection"
    ctx = HuntContext(store, config, window, kind)
    return one_per_subject(run_detectors(ctx, detectors)), window


def one_per_subject(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per subject, as the hunt scores it.

    Where the scoring pass wrote a ``pair_score`` (two or more detectors, or a
    modifier, on one pair), it stands for the detector findings it combines; those
    are dropped, so one activity counts once and with the hunt's combined score.
    ``host_score`` findings restate their host's pairs and are dropped too.
    """
    combined = {
        i for f in findings if f.detector == PAIR_DETECTOR for i in f.evidence.get("findings", ())
    }
    return [f for f in findings if f.detector != HOST_DETECTOR and f.id not in combined]


def evaluate_store(
    store: Store,
    config: Config,
    truths: Sequence[Truth],
    detectors: Sequence[type[Detector]],
    *,
    ks: Sequence[int] = DEFAULT_K,
    alert_score: float = DEFAULT_ALERT_SCORE,
    window_hours: float | None = None,
) -> tuple[EvalResult, list[Finding]]:
    """Hunt with ``detectors`` (see :func:`hunt_window`) and score the findings against
    the ``truths`` that overlap the window (the others cannot be found in it)."""
    findings, window = hunt_window(store, config, detectors, window_hours)
    assert window.start is not None and window.end is not None
    days = (window.end - window.start).total_seconds() / 86400
    lo, hi = window.start.timestamp(), window.end.timestamp()
    truths = [t for t in truths if t.start < hi and t.end >= lo]
    hosts = config.section("simulation").get("internal_hosts") or count_internal_hosts(
        store, config
    )
    result = score_findings(
        findings,
        truths,
        is_internal=config.network.is_internal,
        hosts=int(hosts),
        days=days,
        ks=ks,
        alert_score=alert_score,
    )
    return result, findings


def ingest_checked(store: Store, paths: Sequence[Path]) -> IngestReport:
    """Ingest, refusing to evaluate on data that did not read cleanly."""
    report = ingest_paths(store, paths)
    bad = [f for f in report.files if f.status in ("refused", "partial")]
    if bad:
        raise InputError(Location(bad[0].path), f"cannot evaluate on it: {bad[0].message}")
    return report


def simulate_logs(sim: Simulation, out: Path) -> None:
    """Write a simulation as Zeek logs (the path real data takes) into ``out``."""
    write_run(sim, out, [ZeekWriter(out, sim.office.vocabs, sim.local_mask)])
