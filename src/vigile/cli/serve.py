"""``vigile serve``: the administration console in a browser."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Annotated

import typer

from vigile.cli.common import DEFAULT_DB, ConfigOption, DbOption, open_store, read_config
from vigile.cli.output import err_console
from vigile.errors import ConfigError


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _first_account(store: object) -> None:
    from vigile.web.auth import add_user

    err_console.print("This store has no console account yet; create the administrator's.")
    username = typer.prompt("User name", default="admin")
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    add_user(store, username, password)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        db: DbOption = DEFAULT_DB,
        config: ConfigOption = None,
        host: Annotated[
            str,
            typer.Option(
                "--host",
                help="Address to listen on. The default lets only this machine connect; any "
                "other address needs an account to exist first (`vigile user add`).",
            ),
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")] = 8000,
        tls_cert: Annotated[
            Path | None,
            typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate chain."),
        ] = None,
        tls_key: Annotated[
            Path | None, typer.Option("--tls-key", help="Private key (PEM) for --tls-cert.")
        ] = None,
    ) -> None:
        """Run the console: ranked hosts, findings with plots, allowlist, sources, backups.

        The Backups page shows, read-only, the mail vault of the --config file's
        \\[vault] section; the console finds the vault secret as `vigile vault` does
        (key file, $VIGILE_VAULT_PASSPHRASE, passphrase_command), never by a prompt.

        The console opens the store only while it answers a request, so `vigile ingest`,
        `vigile hunt` and `vigile collect` can write the same file while it runs; a page
        asked for while one of them holds the file is answered "503, try again". With no
        account yet, it asks for one on a terminal, or offers a first-account page when
        listening on a loopback address.
        """
        import uvicorn

        from vigile.web.access import StoreAccess
        from vigile.web.app import LOOPBACK_HOSTS, create_app
        from vigile.web.auth import count_users

        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        cfg = read_config(config)
        loopback = is_loopback(host)
        store = open_store(db)  # waits like other commands if an ingest holds the file
        try:
            if count_users(store) == 0 and sys.stdin.isatty():
                _first_account(store)
            users = count_users(store)
        finally:
            store.close()
        if users == 0 and not loopback:
            raise ConfigError(
                f"refusing to listen on {host} with no account: create one with "
                f"`vigile user add NAME --db {db}` first"
            )
        allow_setup = loopback and users == 0
        app = create_app(
            StoreAccess(db),
            cfg,
            secure_cookies=tls_cert is not None,
            allow_setup=allow_setup,
            allowed_hosts=LOOPBACK_HOSTS if loopback else ("*",),
        )
        scheme = "https" if tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        page = "/setup" if allow_setup else "/"
        err_console.print(f"vigile console on {scheme}://{shown}:{port}{page}", highlight=False)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,  # an idle browser connection must not block a stop
            access_log=False,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
