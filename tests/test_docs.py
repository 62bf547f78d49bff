"""Meta-tests that stop drift between code and docs."""

from __future__ import annotations

from pathlib import Path

from vigile import schema
from vigile.cli import docgen

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_schema_doc_is_generated_from_code():
    assert (DOCS / "schema.md").read_text() == schema.render_markdown(), (
        "docs/schema.md is stale: run `python -m vigile.schema > docs/schema.md`"
    )


def test_cli_reference_is_generated_from_cli():
    assert (DOCS / "cli.md").read_text() == docgen.render(), "docs/cli.md is stale: run `make docs`"


def test_every_command_has_help():
    import typer.main

    from vigile.cli import app

    def walk(cmd, path: str):
        yield path, cmd
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, f"{path} {name}")

    for path, cmd in walk(typer.main.get_command(app), "vigile"):
        assert cmd.help and len(cmd.help) > 20, f"{path} lacks --help text"
        for p in cmd.params:
            if p.param_type_name == "option" and p.name not in (
                "install_completion",
                "show_completion",
                "help",
            ):
                assert p.help, f"{path} {p.opts} lacks help"


def test_help_text_is_shown_verbatim():
    """`--help` reads help as Rich markup: a bare ``[ingest.pcap]`` would vanish from it.

    Help text names config tables in brackets, so such brackets are escaped (``\\[``, which
    Markdown, and so docs/cli.md, reads as ``[`` too); Rich must show the text as written.
    """
    import typer.main
    from rich.text import Text

    from vigile.cli import app

    def texts(cmd, path: str):
        yield path, cmd.help or ""
        for p in cmd.params:
            yield f"{path} {p.name}", getattr(p, "help", None) or ""
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                yield from texts(cmd.get_command(ctx, name), f"{path} {name}")

    for where, text in texts(typer.main.get_command(app), "vigile"):
        shown = Text.from_markup(text).plain
        assert shown == text.replace("\\[", "["), f"{where}: --help would show {shown!r}"


def test_help_lists_every_command_from_its_summary_without_importing_it():
    """`vigile --help` lists commands from SUMMARIES, importing none of their modules."""
    import inspect
    import subprocess
    import sys

    import typer.main

    from vigile.cli import SUMMARIES, app

    root = typer.main.get_command(app)
    ctx = root.context_class(root)
    real = {name: root.get_command(ctx, name) for name in root.list_commands(ctx)}
    assert list(real) == list(SUMMARIES), "SUMMARIES must list every command, in order"
    for name, cmd in real.items():
        first = inspect.cleandoc(cmd.help).split("\n\n")[0]
        assert " ".join(first.split()) == SUMMARIES[name], f"SUMMARIES[{name!r}] is stale"

    code = (
        "import sys\nfrom vigile.cli import app\ntry:\n    app(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in sys.modules if m.startswith('vigile.cli.')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "simulate  Simulate an office network" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_paragraphs_are_wrapped_to_the_terminal():
    """`--help` keeps a docstring's line breaks and wraps each line to the terminal, so a
    docstring line wider than an 80-column terminal would leave a word on a line of its
    own: every paragraph of every command's help must be one line (wrapped by Rich)."""
    import typer.main

    from vigile.cli import app

    def walk(cmd, path: str):
        yield path, cmd.help or ""
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), f"{path} {name}")

    walked = list(walk(typer.main.get_command(app), "vigile"))
    assert len(walked) > 15
    for where, text in walked[1:]:  # the root's help is one string already
        for paragraph in text.split("\n\n"):
            assert "\n" not in paragraph, f"{where}: a line break inside {paragraph[:60]!r}"
