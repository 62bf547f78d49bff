"""``vigile user``: console accounts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vigile.cli.common import DEFAULT_DB, CsvOption, DbOption, JsonOption, open_store
from vigile.cli.output import choose_format, emit_rows, err_console
from vigile.errors import ConfigError

user_app = typer.Typer(
    help="Manage console accounts (stored in the store, passwords as Argon2id hashes).",
    no_args_is_help=True,
)


@user_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name (no spaces).", show_default=False)],
    db: DbOption = DEFAULT_DB,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Set a new password for an existing account.")
    ] = False,
) -> None:
    """Create a console account (or reset its password with --replace).

    Without --password-stdin the password is asked for twice on the terminal. It needs
    at least 10 characters. A running `vigile serve` on the same store need not be stopped.
    """
    from vigile.web.auth import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = open_store(db)
    try:
        add_user(store, username, password, replace=replace)
    finally:
        store.close()
    err_console.print(f"account {username.strip()!r} saved in {db}", highlight=False)


@user_app.command("list")
def list_users(
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List console accounts and when they were created."""
    store = open_store(db, read_only=True)
    try:
        rows = store.scan("console_users", ["username", "created_at"]).to_pylist()
    finally:
        store.close()
    fmt = choose_format(as_json, as_csv)
    if not rows and not (as_json or as_csv):
        raise ConfigError(f"{db}: no console account; create one with `vigile user add`")
    emit_rows(rows, ["username", "created_at"], fmt, title="Accounts")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
