"""``vigile eval``: measure the detectors on labeled data, or on simulated traffic."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.padding import Padding
from rich.text import Text

from vigile.cli.common import CsvOption, JsonOption
from vigile.cli.output import Format, choose_format, console, emit_rows, err_console
from vigile.config import Config, load_config
from vigile.detect import Detector, registered_detectors
from vigile.errors import ConfigError, InputError, Location
from vigile.evaluate import DEFAULT_ALERT_SCORE, FALSE_ALERT_COLUMNS, EvalResult
from vigile.evaluate.labels import read_stratosphere_truth
from vigile.evaluate.report import (
    SCENARIO_COLUMNS,
    SWEEP_COLUMNS,
    plot_sweeps,
    render_result,
    sweep_rows,
)
from vigile.evaluate.run import evaluate_store, ingest_checked, simulate_logs
from vigile.evaluate.sweep import SweepPoint, run_sweep
from vigile.simulate import Simulation, SimulationSpec
from vigile.simulate.scenarios import SCENARIOS, parse_scenario
from vigile.simulate.scenarios.base import Truth
from vigile.simulate.truth import read_truth
from vigile.store.duckdb import DuckDBStore

TRUTH_NAME = "ground-truth.csv"


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(
                help="Labeled logs or a folder from `vigile simulate`. Without paths, a "
                "simulated office with every scenario is made and evaluated.",
                show_default=False,
            ),
        ] = None,
        truth: Annotated[
            Path | None,
            typer.Option(
                "--truth",
                help="Ground truth: a ground-truth.csv from `vigile simulate`, or a Zeek "
                "conn log with Stratosphere `label` columns. Default: ground-truth.csv in "
                "the folder, else the label columns of the conn logs given.",
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                help="Network model (TOML). Default: the vigile.toml in the folder given "
                "(simulated runs write one), else the built-in defaults.",
            ),
        ] = None,
        detector: Annotated[
            list[str] | None,
            typer.Option("--detector", "-d", help="Evaluate only this detector (repeatable)."),
        ] = None,
        alert_score: Annotated[
            float,
            typer.Option("--alert-score", help="A finding scoring at least this is an alert."),
        ] = DEFAULT_ALERT_SCORE,
        window_hours: Annotated[
            float | None,
            typer.Option(
                "--window-hours",
                help="Score only the hours ending at the newest connection, as `vigile hunt` "
                "does (scenarios outside them are left out). Default: the whole time span.",
            ),
        ] = None,
        benign: Annotated[
            bool,
            typer.Option("--benign", help="Simulate benign traffic only (measures false alerts)."),
        ] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of simulated runs.")] = 7,
        days: Annotated[float, typer.Option("--days", help="Days of simulated traffic.")] = 3.0,
        hosts: Annotated[int, typer.Option("--hosts", help="Desktops in simulated runs.")] = 40,
        sweep: Annotated[
            list[str] | None,
            typer.Option(
                "--sweep",
                help="Run the jitter sweep (0-50 %) and/or the period sweep (10 s - 1 h) "
                "instead: 10 simulated beacons per point. Repeatable.",
            ),
        ] = None,
        plot: Annotated[
            Path | None, typer.Option("--plot", help="With --sweep: write recall curves (PNG).")
        ] = None,
        report: Annotated[
            Path | None, typer.Option("--report", help="Also write the tables here (Markdown).")
        ] = None,
        as_json: JsonOption = False,
        as_csv: CsvOption = False,
    ) -> None:
        """Measure detection quality: rank of each true positive, precision at k, recall,
        and alerts per 1,000 hosts per day; lists every false alert for audit.

        Runs the detectors over the whole time span of the data and compares their
        ranked findings with ground truth. See docs/evaluation.md for the rules.
        """
        fmt = choose_format(as_json, as_csv)
        detectors = _select(detector)
        names = [d.name for d in detectors]
        if sweep:
            points = _sweeps(sweep, detectors, seed, hosts, alert_score)
            emit_rows(sweep_rows(points), SWEEP_COLUMNS, fmt, title="Sweeps")
            if plot is not None:
                plot_sweeps(points, plot)
            if report is not None:
                from vigile.evaluate.report import markdown_table

                report.write_text(markdown_table(sweep_rows(points), SWEEP_COLUMNS), "utf-8")
            return
        with tempfile.TemporaryDirectory(prefix="vigile-eval-") as tmp:
            if paths:
                cfg = _config_for(paths, config)
                truths = _truth_for(paths, truth)
            else:
                scenarios = [] if benign else [parse_scenario(n) for n in SCENARIOS]
                sim = Simulation(SimulationSpec(seed, days, hosts, scenarios=scenarios))
                paths = [Path(tmp) / "logs"]
                simulate_logs(sim, paths[0])
                cfg, truths = load_config(paths[0] / "vigile.toml"), sim.truth
            result = _evaluate(
                Path(tmp) / "eval.duckdb",
                paths,
                cfg,
                truths,
                detectors,
                alert_score,
                window_hours,
            )
        _print(result, fmt)
        if report is not None:
            report.write_text(render_result(result, names), "utf-8")


def _evaluate(
    db: Path,
    paths: list[Path],
    cfg: Config,
    truths: list[Truth],
    detectors: list[type[Detector]],
    alert_score: float,
    window_hours: float | None,
) -> EvalResult:
    store = DuckDBStore(db)
    try:
        ingest_checked(store, paths)
        result, _ = evaluate_store(
            store, cfg, truths, detectors, alert_score=alert_score, window_hours=window_hours
        )
    finally:
        store.close()
    return result


def _print_scenarios(rows: list[dict[str, Any]]) -> None:
    """Each scenario as a heading and a line of how it fared: nine columns, two of them
    addresses and one a list of detectors, folded into a few cells each at 80 columns."""
    found = sum(r["detected"] == "yes" for r in rows)
    console.print(Text(f"Scenarios ({found} of {len(rows)} detected)", style="bold"))
    for r in rows:
        console.print(Text(f"  {r['scenario']} ({r['kind']}): {r['src']} → {r['dst']}"))
        if r["rank"] is None:
            fared = "no finding about it"
        else:
            among = "" if r["host_rank"] is None else f" ({r['host_rank']} among its host's)"
            fared = f"best rank {r['rank']}{among}, score {r['score']:.3f}, by {r['detector']}"
        verdict = (
            "detected"
            if r["detected"] == "yes"
            else "missed (no unsuppressed finding at the alert score or above)"
        )
        console.print(Padding(Text(f"{verdict}: {fared}"), (0, 0, 0, 4)))


def _print(result: EvalResult, fmt: Format) -> None:
    if fmt is Format.TABLE:
        _print_scenarios([s.row() for s in result.scenarios])
    else:
        emit_rows([s.row() for s in result.scenarios], SCENARIO_COLUMNS, fmt)
    summary = [{"metric": k, "value": v} for k, v in result.summary().items()]
    emit_rows(summary, ["metric", "value"], fmt, title="Summary")
    if result.false_alert_rows:
        rows, columns = result.false_alert_rows, FALSE_ALERT_COLUMNS
        emit_rows(rows, columns, fmt, title="False alerts (alerts that match no scenario)")
    if result.hosts == 0:
        err_console.print(
            "[yellow]no internal host in the data[/]: give --config with its internal "
            "networks, or alert rates per 1,000 hosts mean nothing",
            highlight=False,
        )
    if fmt is Format.TABLE and result.findings == 0:
        console.print("No findings at all: are detectors installed (`vigile status`)?")


def _select(names: list[str] | None) -> list[type[Detector]]:
    found = registered_detectors()
    if not names:
        return found
    known = {d.name: d for d in found}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"no detector {missing[0]!r}; installed: {', '.join(known) or 'none'}")
    return [known[n] for n in names]


def _sweeps(
    kinds: list[str], detectors: list[type[Detector]], seed: int, hosts: int, alert_score: float
) -> list[SweepPoint]:
    bad = [k for k in kinds if k not in ("jitter", "period")]
    if bad:
        raise ConfigError(f"--sweep {bad[0]!r}: choose jitter or period")
    points: list[SweepPoint] = []
    for kind in dict.fromkeys(kinds):
        points += run_sweep(kind, detectors, seed=seed, hosts=hosts, alert_score=alert_score)
    return points


def _config_for(paths: list[Path], given: Path | None) -> Config:
    if given is not None:
        return load_config(given)
    beside = [p / "vigile.toml" for p in paths if p.is_dir() and (p / "vigile.toml").exists()]
    return load_config(beside[0]) if beside else Config()


def _truth_for(paths: list[Path], given: Path | None) -> list[Truth]:
    if given is not None:
        return _read_any_truth(given)
    for p in paths:
        if p.is_dir() and (p / TRUTH_NAME).exists():
            return read_truth(p / TRUTH_NAME)
    labeled = [
        f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*conn*"))) if f.is_file()
    ]
    truths: list[Truth] = []
    for f in labeled:
        truths += read_stratosphere_truth(f)
    if not labeled:
        raise InputError(
            Location(paths[0]), f"no {TRUTH_NAME} and no labeled conn log; give --truth"
        )
    return truths


def _read_any_truth(path: Path) -> list[Truth]:
    if not path.exists():
        raise InputError(Location(path), "no such file")
    if path.name.endswith(".csv"):
        return read_truth(path)
    return read_stratosphere_truth(path)
