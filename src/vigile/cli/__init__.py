"""The ``vigile`` command line.

Each command lives in its own module with a ``register(app)`` function; the list
below is the one place that says which commands exist and in what order ``--help``
shows them.
"""

from __future__ import annotations

import sys
from importlib import import_module

import typer

from vigile.errors import VigileError

app = typer.Typer(
    name="vigile",
    help=(
        "Find compromised servers from their network traffic, inspect Exchange servers "
        "for what an intruder left behind, and restore mail to before the break-in."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Command modules, in the order ``vigile --help`` lists them.
COMMANDS = (
    "vigile.cli.init",
    "vigile.cli.ingest",
    "vigile.cli.collect",
    "vigile.cli.hunt",
    "vigile.cli.explain",
    "vigile.cli.status",
    "vigile.cli.inspect",
    "vigile.cli.report",
    "vigile.cli.serve",
    "vigile.cli.user",
    "vigile.cli.simulate",
    "vigile.cli.eval",
    "vigile.cli.vault",
)

for _module in COMMANDS:
    import_module(_module).register(app)


def main() -> None:
    """Console-script entry point: user errors print one line and exit non-zero."""
    try:
        app()
    except VigileError as e:
        from rich.markup import escape

        from vigile.cli.output import err_console

        # The message names files and quotes their content: never read it as markup.
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
