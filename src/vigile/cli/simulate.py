"""``vigile simulate``: a simulated office network with attacks hidden in it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from vigile.cli.output import err_console
from vigile.errors import ConfigError
from vigile.simulate import Simulation, SimulationSpec, Writer, write_run
from vigile.simulate.scenarios import DEFAULT_SCENARIOS, SCENARIOS, parse_scenario
from vigile.simulate.writers.netflow import NetflowExporter
from vigile.simulate.writers.parquet import ParquetWriter
from vigile.simulate.writers.pcap import PcapWriter
from vigile.simulate.writers.zeek import ZeekWriter

FORMATS = ("zeek", "parquet", "pcap")


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into (created).")],
        seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 7,
        days: Annotated[float, typer.Option("--days", help="Days of traffic to make.")] = 3.0,
        hosts: Annotated[
            int,
            typer.Option(
                "--hosts", help="Desktops in the office (servers, BMCs and printers come on top)."
            ),
        ] = 40,
        scenario: Annotated[
            list[str] | None,
            typer.Option(
                "--scenario",
                "-s",
                help="Attack to hide, as NAME or NAME:key=value,...; repeat for several. "
                f"Names: {', '.join(SCENARIOS)}, or 'all', or 'none' for benign traffic only. "
                f"Default: {', '.join(DEFAULT_SCENARIOS)}.",
            ),
        ] = None,
        fmt: Annotated[
            list[str] | None,
            typer.Option(
                "--format",
                "-f",
                help="Output: zeek (TSV logs), parquet (vigile's schema, one file per "
                "table, read back by `vigile ingest`) or pcap (packets, for small runs). One "
                "format per --out folder, as a folder is ingested as a whole. Default: zeek.",
            ),
        ] = None,
        rotate: Annotated[
            bool,
            typer.Option(
                "--rotate",
                help="Hourly, gzipped Zeek logs in one folder per "
                "day, as a Zeek cluster archives them.",
            ),
        ] = False,
        start: Annotated[
            str, typer.Option("--start", help="First day (UTC date, YYYY-MM-DD).")
        ] = "2026-03-02",
        export: Annotated[
            str | None,
            typer.Option(
                "--export",
                help="Also send the flows to a NetFlow/IPFIX collector "
                "at HOST:PORT (UDP), one record per direction, in simulated time.",
            ),
        ] = None,
        export_version: Annotated[
            int, typer.Option("--export-version", help="5 (NetFlow v5) or 10 (IPFIX).")
        ] = 10,
        one_way: Annotated[
            bool,
            typer.Option(
                "--export-one-way",
                help="With --export, send only what internal hosts send, as an exporter "
                "metering its inside interface's ingress only: replies from outside are "
                "never exported.",
            ),
        ] = False,
        activity: Annotated[
            float, typer.Option("--activity", help="Multiply people's browsing rate by this.")
        ] = 1.0,
    ) -> None:
        """Simulate an office network for some days, with attacks hidden in it.

        Writes Zeek logs (or Parquet, or a packet capture; or sends NetFlow/IPFIX), a
        vigile.toml describing the network, and ground-truth.csv saying which host,
        pair and time window each attack occupies.
        Deterministic: the same options give the same files. See docs/simulate.md.
        """
        spec = SimulationSpec(
            seed=seed,
            days=days,
            workstations=hosts,
            start=_parse_start(start),
            scenarios=[parse_scenario(s) for s in _scenario_names(scenario)],
            activity=activity,
        )
        formats = fmt or ["zeek"]
        unknown = sorted(set(formats) - set(FORMATS))
        if unknown:
            raise ConfigError(f"unknown --format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
        if len(set(formats)) > 1:
            raise ConfigError(
                f"write {' and '.join(sorted(set(formats)))} to different --out folders (a "
                "folder is ingested as a whole and would hold the same traffic twice); the "
                "same --seed gives the same traffic in both"
            )
        if one_way and export is None:
            raise ConfigError("--export-one-way needs --export HOST:PORT")
        if export_version not in (5, 10):
            raise ConfigError("--export-version must be 5 (NetFlow v5) or 10 (IPFIX)")
        if days <= 0 or not 1 <= hosts <= 65000:
            raise ConfigError("--days must be positive and --hosts between 1 and 65,000")
        began = time.perf_counter()
        sim = Simulation(spec)
        out.mkdir(parents=True, exist_ok=True)
        writers: list[Writer] = []
        if "zeek" in formats:
            writers.append(ZeekWriter(out, sim.office.vocabs, sim.local_mask, rotate=rotate))
        if "parquet" in formats:
            writers.append(ParquetWriter(out, sim.office.vocabs, seed))
        if "pcap" in formats:
            writers.append(PcapWriter(out / "traffic.pcap", sim.office.vocabs, sim.local_mask))
        exporter = None
        if export is not None:
            host, port = _host_port(export)
            inside = sim.local_mask if one_way else None
            exporter = NetflowExporter(sim.office.vocabs, host, port, export_version, inside=inside)
            writers.append(exporter)
        counts = write_run(sim, out, writers)
        err_console.print(
            f"wrote {counts['conn']:,} connections over {days:g} days for "
            f"{sim.office.internal_hosts} hosts to {out} in {time.perf_counter() - began:.1f} s; "
            f"scenarios: {', '.join(t.scenario for t in sim.truth) or 'none'}",
            highlight=False,
        )
        if exporter is not None:
            err_console.print(
                f"sent {exporter.records:,} flow records in {exporter.datagrams:,} datagrams "
                f"to {export}",
                highlight=False,
            )
        if sim.skipped:
            err_console.print(
                f"[yellow]not in the data[/] (they would start after the run ends): "
                f"{', '.join(sim.skipped)}; use more --days or set start_day",
                highlight=False,
            )


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--export {text!r}: expected HOST:PORT, e.g. 127.0.0.1:2055")
    return host, int(port)


def _scenario_names(given: list[str] | None) -> list[str]:
    if not given:
        return list(DEFAULT_SCENARIOS)
    if given == ["none"]:
        return []
    if given == ["all"]:
        return list(SCENARIOS)
    return given


def _parse_start(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"--start {text!r} is not a date like 2026-03-02") from None
