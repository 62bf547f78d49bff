"""vigile eval: scoring against ground truth, with detectors passed in (not registered)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.config import load_config
from vigile.detect import Finding, HuntContext
from vigile.errors import ConfigError, InputError
from vigile.evaluate import matches, score_findings
from vigile.evaluate.labels import read_stratosphere_truth
from vigile.evaluate.report import plot_sweeps
from vigile.evaluate.run import evaluate_store, ingest_checked, one_per_subject, simulate_logs
from vigile.evaluate.sweep import run_point
from vigile.simulate import Simulation, SimulationSpec
from vigile.simulate.scenarios import parse_scenario
from vigile.simulate.scenarios.base import Truth
from vigile.store import Agg, Pred
from vigile.store.duckdb import DuckDBStore

W = datetime(2026, 3, 2, tzinfo=UTC)


class BigDownloadDetector:
    """Test double: pairs whose responder sent over 1 GB in the window."""

    name: ClassVar[str] = "test-big-download"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = "pairs with more than 1 GB of responses"

    def run(self, ctx: HuntContext) -> list[Finding]:
        pairs = ctx.store.group(
            "conn", ["src", "dst"], [Agg("sum", "resp_bytes", "down")], window=ctx.window
        )
        out = []
        for row in pairs.to_pylist():
            down = float(row["down"] or 0)
            if down > 1e9:
                score = min(1.0, down / 4e9)
                out.append(
                    Finding(
                        self.name,
                        row["src"],
                        row["dst"],
                        None,
                        score,
                        ctx.window.start or W,
                        ctx.window.end or W,
                        "big",
                    )
                )
        return out


class ManagementEgressDetector:
    """Test double: hosts on a management subnet talking to outside addresses."""

    name: ClassVar[str] = "test-bmc-egress"
    tables: ClassVar[tuple[str, ...]] = ("conn",)
    summary: ClassVar[str] = "BMCs opening outbound connections"

    def run(self, ctx: HuntContext) -> list[Finding]:
        nets = ctx.config.network
        table = ctx.store.group(
            "conn",
            ["src", "dst"],
            [Agg("count", None, "n")],
            window=ctx.window,
            where=[Pred("src", ">=", "10.20.250.")],
        )
        out = []
        for row in table.to_pylist():
            mgmt = any(row["src"].startswith("10.20.250.") for _ in nets.management)
            if mgmt and not nets.is_internal(row["dst"]):
                out.append(
                    Finding(
                        self.name,
                        row["src"],
                        row["dst"],
                        None,
                        0.95,
                        ctx.window.start or W,
                        ctx.window.end or W,
                        "bmc out",
                    )
                )
        return out


@pytest.fixture(scope="module")
def office_logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Simulation]:
    out = tmp_path_factory.mktemp("eval") / "logs"
    names = ("bmc_beacon", "mailbox_exfil", "port_scan:start_day=0.5")
    scenarios = [parse_scenario(n) for n in names]
    sim = Simulation(SimulationSpec(seed=5, days=1, workstations=8, scenarios=scenarios))
    simulate_logs(sim, out)
    return out, sim


def test_evaluate_store_ranks_and_counts(office_logs: tuple[Path, Simulation], tmp_path: Path):
    logs, sim = office_logs
    store = DuckDBStore(tmp_path / "e.duckdb")
    try:
        ingest_checked(store, [logs])
        result, findings = evaluate_store(
            store,
            load_config(logs / "vigile.toml"),
            sim.truth,
            [BigDownloadDetector, ManagementEgressDetector],
        )
    finally:
        store.close()
    by_name = {s.truth.scenario: s for s in result.scenarios}
    bmc = by_name["bmc_beacon"]
    # the BMC's ClientHello is its own (no other source sends that JA3): the pair score
    # adds RITA's rare-JA3 modifier to the detector's 0.95, and eval credits the pair
    assert bmc.detected and (bmc.rank, bmc.host_rank, bmc.score) == (2, 1, 1.0)
    assert by_name["bmc_beacon"].detector == "test-bmc-egress, modifiers +0.15"
    exfil = by_name["mailbox_exfil"]
    assert exfil.detected and exfil.rank == 1 and exfil.host_rank == 1
    assert not by_name["port_scan"].detected and by_name["port_scan"].rank is None
    assert result.recall == pytest.approx(2 / 3)
    assert result.findings == len(findings) == 2
    assert result.precision_at[1] == 1.0 and result.false_alerts == 0
    assert result.hosts == sim.office.internal_hosts
    assert result.days == pytest.approx(1.0, abs=0.01)
    assert result.per_kilohost_day(result.alerts) == pytest.approx(2 / 22 * 1000, rel=0.02)


def _truth(**kw: object) -> Truth:
    base = dict(
        label=0,
        scenario="s",
        kind="beacon",
        src="10.0.0.5",
        dst="6.6.6.6",
        fqdn=None,
        start=W.timestamp(),
        end=W.timestamp() + 3600,
        connections=1,
    )
    base.update(kw)
    return Truth(**base)  # type: ignore[arg-type]


def _finding(
    src: str | None, dst: str | None, fqdn: str | None = None, score: float = 0.9, hours: float = 0
) -> Finding:
    start = datetime.fromtimestamp(W.timestamp() + hours * 3600, UTC)
    return Finding("d", src, dst, fqdn, score, start, start, "")


@pytest.mark.parametrize(
    ("finding", "truth", "expected"),
    [
        (_finding("6.6.6.6", "10.0.0.5"), _truth(), True),  # pair, reversed
        (_finding("10.0.0.5", "7.7.7.7"), _truth(), False),  # same host, other peer
        (_finding("10.0.0.5", None), _truth(), False),  # host-level: not about the peer
        (_finding("10.0.0.9", "10.0.0.1", "a.c2.net"), _truth(dst=None, fqdn="c2.net"), True),
        (_finding("10.0.0.9", "10.0.0.1", "c2.net"), _truth(dst=None, fqdn="x.c2.net"), True),
        (_finding("10.0.0.9", None, "net"), _truth(dst=None, fqdn="c2.net"), False),
        (_finding("10.0.0.5", None), _truth(dst=None, fqdn=None), True),  # the scanning host
        (_finding("10.0.0.9", None), _truth(dst=None, fqdn=None), False),  # another host
        (_finding("10.0.0.5", "10.20.1.1"), _truth(dst=None, fqdn=None), False),  # other traffic
        (_finding("6.6.6.6", "10.0.0.5", hours=5), _truth(), False),  # outside the window
    ],
)
def test_matching_rules(finding: Finding, truth: Truth, expected: bool) -> None:
    assert matches(finding, truth) is expected


def test_suppressed_and_low_findings_are_not_alerts() -> None:
    t = _truth()
    low = _finding("10.0.0.5", "6.6.6.6", score=0.3)
    hidden = _finding("10.0.0.5", "6.6.6.6", score=0.99)
    hidden.suppressed_by = "allowlist: *.c2.net"
    noise = _finding("10.0.0.7", "1.1.1.1", score=0.8)
    r = score_findings(
        [low, hidden, noise], [t], is_internal=lambda a: a.startswith("10."), hosts=500, days=2
    )
    # Ranked as `vigile hunt` lists them: noise 0.8, low 0.3, then the suppressed 0.99.
    assert not r.scenarios[0].detected and r.scenarios[0].rank == 2
    assert r.scenarios[0].score == 0.3
    assert (r.alerts, r.false_alerts) == (1, 1)
    assert [(a["rank"], a["src"], a["dst"], a["score"]) for a in r.false_alert_rows] == [
        (1, "10.0.0.7", "1.1.1.1", 0.8)
    ]
    assert r.per_kilohost_day(r.false_alerts) == 1.0
    assert r.precision_at == {1: 0.0, 5: 2 / 3, 10: 2 / 3}


def test_stratosphere_labels(shared_data: Path) -> None:
    truths = read_stratosphere_truth(
        shared_data / "zeek/stratosphere/001-zeek-scenario-malicious/labeled-conn.log"
    )
    assert sum(t.connections for t in truths) == 244
    assert {t.src for t in truths} == {"192.168.1.115"}
    assert all(t.scenario == "labeled:CC" for t in truths)


def test_sweep_point_and_plot(tmp_path: Path) -> None:
    point = run_point("jitter", 0.3, [BigDownloadDetector], hosts=6)
    assert point.beacons == 10 and point.detected == 0 and point.median_rank is None
    assert point.days == 1.0
    png = tmp_path / "sweep.png"
    plot_sweeps([point], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_command_reads_ground_truth_beside_the_logs(
    office_logs: tuple[Path, Simulation], tmp_path: Path
) -> None:
    logs, sim = office_logs
    report = tmp_path / "eval.md"
    result = CliRunner().invoke(app, ["eval", str(logs), "--json", "--report", str(report)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    scenarios = [r for r in rows if "scenario" in r]
    assert [r["scenario"] for r in scenarios] == [t.scenario for t in sim.truth]
    summary = {r["metric"]: r["value"] for r in rows if "metric" in r}
    assert summary["scenarios"] == 3 and summary["hosts"] == sim.office.internal_hosts
    assert "| scenario | kind |" in report.read_text()
    # The table output gives each scenario a heading with its whole addresses (a table of
    # nine columns folded them into two-character cells at 80 columns).
    shown = CliRunner().invoke(app, ["eval", str(logs)], env={"COLUMNS": "80"}).output
    assert re.search(r"^Scenarios \(\d of 3 detected\)$", shown, re.M)
    for t in sim.truth:
        head = f"  {t.scenario} ({t.kind}): {t.src} → {t.dst or t.fqdn or '-'}"
        assert head in shown.splitlines()


def test_eval_command_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--detector", "nosuch", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert "no detector 'nosuch'" in str(result.exception)
    result = CliRunner().invoke(app, ["eval", "--sweep", "colour"])
    assert isinstance(result.exception, ConfigError)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["eval", str(empty)])
    assert isinstance(result.exception, InputError)
    assert "no ground-truth.csv" in str(result.exception)


def test_window_hours_scores_only_the_last_hours(
    office_logs: tuple[Path, Simulation], tmp_path: Path
) -> None:
    logs, sim = office_logs
    store = DuckDBStore(tmp_path / "w.duckdb")
    try:
        ingest_checked(store, [logs])
        result, _ = evaluate_store(
            store,
            load_config(logs / "vigile.toml"),
            sim.truth,
            [BigDownloadDetector, ManagementEgressDetector],
            window_hours=6,
        )
    finally:
        store.close()
    # The exfiltration (02:00) and the scan (12:00) are outside the last 6 hours of the day;
    # the BMC beacon goes on until the end.
    assert [s.truth.scenario for s in result.scenarios] == ["bmc_beacon"]
    assert result.days == pytest.approx(0.25, abs=0.01)


def test_a_pair_score_stands_for_the_findings_it_combines() -> None:
    role = Finding("role_violation", "10.0.0.5", "6.6.6.6", None, 0.9, W, W, "")
    beacon = Finding("beacon", "10.0.0.5", "6.6.6.6", None, 0.7, W, W, "")
    other = Finding("beacon", "10.0.0.7", "1.1.1.1", None, 0.8, W, W, "")
    ev = {"detectors": {"role_violation": 0.9, "beacon": 0.7}, "findings": [role.id, beacon.id]}
    pair = Finding("pair_score", "10.0.0.5", "6.6.6.6", None, 1.0, W, W, "", ev)
    host = Finding("host_score", "10.0.0.5", None, None, 1.0, W, W, "")
    units = one_per_subject([role, beacon, other, pair, host])
    assert units == [other, pair]
    r = score_findings(
        units, [_truth()], is_internal=lambda a: a.startswith("10."), hosts=2, days=1
    )
    assert (r.scenarios[0].rank, r.scenarios[0].detector) == (1, "role_violation+beacon")
    assert (r.alerts, r.false_alerts) == (2, 1)


def test_the_report_lists_false_alerts_with_quoted_text_kept_in_its_cell() -> None:
    from vigile.evaluate.report import render_result

    noise = _finding("10.0.0.7", "1.1.1.1", score=0.8)
    noise.explanation = "user agent 'curl | sh' seen"
    r = score_findings([noise], [], is_internal=lambda a: a.startswith("10."), hosts=5, days=1)
    text = render_result(r, ["x"])
    assert "False alerts (alerts that match no scenario):" in text
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert row.endswith("| user agent 'curl \\| sh' seen |")
    assert len(re.split(r"(?<!\\)\|", row)) == 8  # six cells between the outer pipes
