"""``vigile collect``: receive NetFlow v5/v9/IPFIX over UDP into the store."""

from __future__ import annotations

import ipaddress
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from vigile.cli.common import DEFAULT_DB, DbOption, JsonOption, open_store, read_config
from vigile.cli.output import Format, console, emit_rows, err_console
from vigile.errors import ConfigError
from vigile.ingest.collector import PAIR_WAIT, Collector, Counters, parse_listen
from vigile.store.duckdb import DuckDBStore

ListenOption = Annotated[
    str,
    typer.Option(
        "--listen",
        help="UDP address and port to receive exports on, e.g. 127.0.0.1:2055 or [::1]:4739.",
    ),
]
AllowRemoteOption = Annotated[
    bool,
    typer.Option(
        "--allow-remote",
        help="Allow listening on a non-loopback address (exporters on other machines).",
    ),
]
BatchRowsOption = Annotated[
    int, typer.Option("--batch-rows", min=1, help="Write a batch once this many flows wait.")
]
BatchSecondsOption = Annotated[
    float,
    typer.Option("--batch-seconds", min=0.1, help="Write a batch at least this often (seconds)."),
]
PairWaitOption = Annotated[
    float,
    typer.Option(
        "--pair-wait",
        min=0.0,
        help="Seconds a flow record with no reverse-direction record yet waits for it "
        "(into later batches) before it is stored alone; 0 stores every batch as it is. "
        "An exporter that sends one direction only is recognised (5,000 records in a row "
        "without a partner) and its records are then stored without waiting; with the "
        "internal networks of --config, this is recognised separately for its internal, "
        "internet and transit traffic.",
    ),
]
CollectConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="VIGILE_CONFIG",
        help="Network model (TOML): its \\[network] internal networks tell internal, "
        "internet and transit traffic apart, so that an exporter sending only one "
        "direction of its internet traffic is recognised as such while its internal "
        "traffic is still paired; internal = [] judges each exporter as a whole. "
        "Default: ./vigile.toml if present, else the private address ranges.",
    ),
]
DurationOption = Annotated[
    float | None,
    typer.Option("--duration", min=0.1, help="Stop by itself after this many seconds."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No live counters.")]


def counters_table(c: Counters, title: str) -> Table:
    """The counters as a two-column table."""
    table = Table(title=title, title_justify="left")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in vars(c).items():
        if isinstance(value, list):
            table.add_row(name, ", ".join(value) or "none")
        else:
            table.add_row(name, "unknown" if value is None else f"{value:,}")
    return table


def _check_listen(listen: str, allow_remote: bool) -> tuple[str, int]:
    try:
        host, port = parse_listen(listen)
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as e:
        raise ConfigError(f"--listen {listen}: {e}; expected an IP address and port") from None
    if not loopback and not allow_remote:
        raise ConfigError(
            f"--listen {listen} is not a loopback address; add --allow-remote to receive "
            "exports from other machines"
        )
    return host, port


def register(app: typer.Typer) -> None:
    @app.command()
    def collect(
        listen: ListenOption = "127.0.0.1:2055",
        db: DbOption = DEFAULT_DB,
        allow_remote: AllowRemoteOption = False,
        batch_rows: BatchRowsOption = 50_000,
        batch_seconds: BatchSecondsOption = 5.0,
        pair_wait: PairWaitOption = PAIR_WAIT,
        config: CollectConfigOption = None,
        duration: DurationOption = None,
        quiet: QuietOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Receive NetFlow v5, v9 and IPFIX exports over UDP and store the flows.

        Point a router, firewall or softflowd at the address. Flows land in the
        `conn` table in batches (by count and by time) with the exporter's address
        as sensor. Ctrl-C or SIGTERM stops it after writing everything received.
        Counters (datagrams, flows, unknown template, malformed, dropped, lost)
        are shown live, printed on exit and stored with each batch in `sources`.
        The network model's internal networks (--config) tell internal, internet and
        transit traffic apart, so an exporter that sends both directions of one and
        one direction of another is recognised for what it is (docs/netflow.md).
        """
        host, port = _check_listen(listen, allow_remote)
        internal = read_config(config).network.internal
        open_store(db).close()  # the store opens (or is created) before listening starts

        def open_for_batch() -> DuckDBStore:
            return DuckDBStore(db, wait=BATCH_WAIT, on_wait=_tell_waiting(db))

        try:
            collector = Collector(
                open_for_batch,
                host,
                port,
                batch_rows=batch_rows,
                batch_seconds=batch_seconds,
                pair_wait=pair_wait,
                internal=internal,
            )
        except OSError as e:
            raise ConfigError(f"--listen {listen}: {e.strerror or e}") from None
        err_console.print(f"listening on {collector.address}", highlight=False)
        previous = {s: signal.signal(s, lambda *_: collector.stop()) for s in _SIGNALS}
        if duration is not None:
            signal.setitimer(signal.ITIMER_REAL, duration)
            previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, lambda *_: collector.stop())
        try:
            live_title = f"Collecting on {collector.address} (Ctrl-C to stop)"
            if quiet or as_json:
                collector.serve()
            else:
                table = counters_table(collector.counters, live_title)
                with Live(table, console=err_console, transient=True) as live:
                    collector.serve(on_tick=lambda c: live.update(counters_table(c, live_title)))
        finally:
            counters = collector.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if as_json:
            emit_rows([vars(counters)], list(vars(counters)), Format.JSON)
        else:
            console.print(counters_table(counters, f"Collected on {collector.address}"))
        for line in collector.one_way_notices():
            err_console.print(line, highlight=False)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
BATCH_WAIT = 600.0
"""Seconds a batch waits for the store while another command (hunt, ingest) holds it."""


def _tell_waiting(db: Path) -> Callable[[str], None]:
    def tell(holder: str) -> None:
        err_console.print(f"{db} is {holder}; batches wait for it", markup=False)

    return tell
