"""The ``vigile`` command line.

Each command lives in its own module with a ``register(app)`` function; the list
below is the one place that says which commands exist and in what order ``--help``
shows them.

Command modules are imported lazily, when their command is asked for: ``vigile vault
backup`` then imports the vault commands alone, not the DuckDB, PyArrow, NumPy and FastAPI
that other commands need, whose import costs more than a no-change backup itself.
``vigile --help`` lists the commands from :data:`SUMMARIES` and imports none of them (a
test keeps each summary equal to its command's own); ``docs/cli.md`` imports them all.
"""

from __future__ import annotations

import sys
from importlib import import_module
from inspect import cleandoc  # a plain `import inspect` is shadowed by vigile.cli.inspect
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

from vigile.errors import VigileError

#: Command modules, in the order ``vigile --help`` lists them. A module's command is
#: named like the module (``vigile.cli.vault`` registers ``vault``); one that is not is
#: still found, by importing every module.
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

#: What ``vigile --help`` lists, in its order (commands, then groups of commands): each
#: command's name and the first paragraph of its help.
SUMMARIES: dict[str, str] = {
    "init": "Write a commented default vigile.toml: internal networks, hosts, allowlists.",
    "ingest": "Read Zeek logs, captures, EVE JSON, nfcapd and Parquet files into the store.",
    "collect": "Receive NetFlow v5, v9 and IPFIX exports over UDP and store the flows.",
    "hunt": "Hunt for compromised hosts: ingest PATHS (if given), run every detector, rank.",
    "explain": "Explain one finding: its sentence, its score and every number behind it.",
    "status": "Show what the store holds: rows and time span per table, inputs, findings.",
    "report": "Write the console's content for the top hosts to one self-contained HTML file.",
    "serve": "Run the console: ranked hosts, findings with plots, allowlist, sources, backups.",
    "simulate": "Simulate an office network for some days, with attacks hidden in it.",
    "eval": "Measure detection quality: rank of each true positive, precision at k, recall, "
    "and alerts per 1,000 hosts per day; lists every false alert for audit.",
    "inspect": "Inspect a server for what an intruder left behind.",
    "user": "Manage console accounts (stored in the store, passwords as Argon2id hashes).",
    "vault": "Back up mail accounts (IMAP) into an encrypted, deduplicated vault and restore "
    "them to a point in time. Accounts and the vault are set in the \\[vault] section of "
    "vigile.toml (see docs/vault.md).",
}

#: Settings of the app, and of the app each command module registers on when loaded.
_SETTINGS: dict[str, Any] = {"pretty_exceptions_enable": False, "rich_markup_mode": "rich"}
_loaded: dict[str, dict[str, Any]] = {}


def _commands_of(module: str) -> dict[str, Any]:
    """The click commands a module registers, by name (imports it the first time)."""
    if module not in _loaded:
        own = typer.Typer(**_SETTINGS)
        import_module(module).register(own)
        _loaded[module] = dict(typer.main.get_group(own).commands)
        for command in _loaded[module].values():
            _unwrap_help(command)
    return _loaded[module]


def _unwrap_help(command: Any) -> None:
    """Put each paragraph of a command's help (and its subcommands') on one line.

    Typer's Rich help keeps a docstring's line breaks inside a paragraph and then wraps
    each line to the terminal, so a docstring line wider than the terminal left a word
    or two on a line of its own; joined, a paragraph is wrapped as one.
    """
    if command.help:
        paragraphs = cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for sub in getattr(command, "commands", {}).values():
        _unwrap_help(sub)


class LazyCommandGroup(TyperGroup):
    """The top-level group: imports a command module on first use of its command.

    Contexts and commands are typed ``Any``: Typer vendors its own click as a private
    module (``typer._click``), which is what the overridden methods take.
    """

    listing = False  # True while this group's own --help is written

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        if self.listing:
            return list(SUMMARIES)
        self._load(COMMANDS)
        return super().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self.listing and cmd_name in SUMMARIES:  # a stand-in that only has its summary
            return typer.core.TyperCommand(cmd_name, help=SUMMARIES[cmd_name])
        if cmd_name not in self.commands:
            module = f"vigile.cli.{cmd_name}"
            self._load([module] if module in COMMANDS else COMMANDS)
        if cmd_name not in self.commands:
            self._load(COMMANDS)
        return super().get_command(ctx, cmd_name)

    def _load(self, modules: tuple[str, ...] | list[str]) -> None:
        for module in modules:
            _commands_of(module)
        # The order of an eager registration on one app: commands, then groups, each in
        # COMMANDS order, whichever module was loaded first.
        loaded = [c for m in COMMANDS if m in _loaded for c in _loaded[m].values()]
        commands = [c for c in loaded if not hasattr(c, "list_commands")]
        groups = [c for c in loaded if hasattr(c, "list_commands")]
        self.commands = {c.name: c for c in commands + groups}


def _version(asked: bool) -> None:
    """``--version``: vigile's version, the libraries that decide its results, and how
    the compiled kernels run here (ahead of time, or just in time and why)."""
    if not asked:
        return
    import platform
    from importlib.metadata import version

    from vigile import jit

    kernels = jit.status()
    if kernels != "ahead of time":
        kernels = f"just in time: {kernels}"
    libraries = ", ".join(f"{name} {version(name)}" for name in ("duckdb", "pyarrow", "numpy"))
    typer.echo(f"vigile {version('vigile')}")
    typer.echo(f"Python {platform.python_version()}, {libraries}")
    typer.echo(f"kernels: {kernels}")
    raise typer.Exit()


def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Show the version, the main libraries' versions and how kernels run, then exit.",
        ),
    ] = False,
) -> None:
    """Typer builds a group, rather than one command, only for an app with a callback."""


app = typer.Typer(
    name="vigile",
    help=(
        "Find compromised servers from their network traffic, inspect Exchange servers "
        "for what an intruder left behind, and restore mail to before the break-in."
    ),
    cls=LazyCommandGroup,
    callback=_root,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_SETTINGS,
)


#: Set by :func:`allow_quick_exit`: the command has closed and flushed all it opened.
_quick_exit = False


def allow_quick_exit() -> None:
    """Let the console-script entry point end the process without tearing it down.

    For a command that has closed everything it opened (files, databases, threads) and
    whose work is durable: :func:`main` then flushes the output and ends the process
    with ``os._exit``, skipping the interpreter's finalisation (freeing every imported
    module and object, about 0.03 CPU-s after ``vigile vault backup``'s imports, a
    seventh of a no-change backup's CPU; docs/benchmarks.md), unless a thread besides
    the main one is still running. Called in process (the tests' ``CliRunner``), it
    changes nothing: only :func:`main` looks at it.
    """
    global _quick_exit
    _quick_exit = True


def _exit_quickly(code: int) -> None:
    """End the process now with ``code``, if :func:`allow_quick_exit` was called and
    nothing else needs the interpreter; otherwise return (the usual exit follows)."""
    import os
    import threading

    if not _quick_exit or threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: the usual exit reports it
        return
    os._exit(code)


def main() -> None:
    """Console-script entry point: user errors print one line and exit non-zero."""
    try:
        try:
            app()
        except VigileError as e:
            from rich.markup import escape

            from vigile.cli.output import err_console

            # The message names files and quotes their content: never read it as markup.
            err_console.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True
            )
            sys.exit(e.exit_code)
    except SystemExit as done:  # how app() ends, whatever the outcome
        if done.code is None or type(done.code) is int:
            _exit_quickly(done.code or 0)
        raise
