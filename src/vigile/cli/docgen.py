"""Generate ``docs/cli.md`` from the CLI itself (``make docs``); a test keeps it in step."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import typer.main

from vigile.cli import app


def _param_row(param: Any) -> str:
    if param.param_type_name == "option":
        names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
        default = param.default if param.show_default is not False else None
        shown = "" if default in (None, False, (), []) else f" (default: `{default}`)"
        envvar = f" [env `{param.envvar}`]" if param.envvar else ""
        return f"| {names} | {(param.help or '').strip()}{shown}{envvar} |"
    help_text = getattr(param, "help", None) or ""
    return f"| `{(param.name or '').upper()}` | {help_text.strip()} |"


def _command_doc(cmd: Any, path: list[str], out: list[str]) -> None:
    # Typer vendors its own click: build contexts through the command's own class.
    ctx = cmd.context_class(cmd, info_name=" ".join(path))
    hashes = "#" * min(len(path) + 1, 4)
    out += [f"{hashes} `{' '.join(path)}`", ""]
    out += [f"```\n{' '.join(path)} {' '.join(cmd.collect_usage_pieces(ctx))}\n```", ""]
    # Each paragraph of help is one line (vigile.cli._unwrap_help); wrapped here for the page.
    paragraphs = inspect.cleandoc(cmd.help or "").split("\n\n")
    wrap = textwrap.TextWrapper(88, break_long_words=False, break_on_hyphens=False)
    out += ["\n\n".join(wrap.fill(p) for p in paragraphs), ""]
    params = [p for p in cmd.params if p.name not in ("install_completion", "show_completion")]
    if params:
        out += ["| argument / option | meaning |", "|---|---|"]
        out += [_param_row(p) for p in params]
        out.append("")
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                _command_doc(sub, [*path, name], out)


def render() -> str:
    """The whole CLI reference as Markdown."""
    root = typer.main.get_command(app)
    out = [
        "# CLI reference",
        "",
        "Generated from the CLI by `make docs` (`python -m vigile.cli.docgen`); a test keeps",
        "it in step. Every command also answers `--help`.",
        "",
        "Exit codes: 0 success; 1 a vault that cannot be read or written, is busy or "
        "damaged, or a mail server that failed (`vigile vault`), printed as one line; "
        "2 a user error (bad option, unreadable config or input, store locked), printed "
        "as one line; 3 some input was refused or had bad records (everything readable "
        "was stored; see the `rejects` table).",
        "",
    ]
    _command_doc(root, ["vigile"], out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
