"""``vigile serve``: the administration console in a browser."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from vigile.cli.common import DEFAULT_DB, ConfigOption, DbOption, open_store, read_config
from vigile.cli.output import err_console
from vigile.config import Config
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


def cleartext_warning(host: str, tls: bool) -> str | None:
    """What to tell when the console is reachable from other machines without TLS.

    >>> cleartext_warning("127.0.0.1", False) is None, cleartext_warning("0.0.0.0", True)
    (True, None)
    """
    if tls or is_loopback(host):
        return None
    return (
        f"{host} is reachable from other machines and the console is served without TLS: "
        "passwords and session cookies cross the network in clear; give --tls-cert and "
        "--tls-key"
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """The console's socket, bound before anything is printed or asked, so that a port
    in use or a wrong address is one line (uvicorn would log it after the console had
    been announced on that address)."""
    shown = f"[{host}]" if ":" in host else host
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise ConfigError(f"--host {host}: no such address or host name") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            why = "is in use by another program: stop it, or choose another with --port"
        elif e.errno == errno.EADDRNOTAVAIL:
            why = "is not an address of this machine: choose one with --host"
        elif e.errno == errno.EACCES:
            why = "needs administrator rights (ports below 1024): choose another with --port"
        else:
            why = f"cannot be listened on: {e.strerror}"
        raise ConfigError(f"{shown}:{port} {why}") from None
    sock.set_inheritable(True)
    return sock


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
        port: Annotated[
            int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port to listen on.")
        ] = 8000,
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
        from vigile.web.auth import count_users

        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        cfg = read_config(config)
        loopback = is_loopback(host)
        store = open_store(db)  # waits like other commands if an ingest holds the file
        try:
            users = count_users(store)
            if users == 0 and not loopback and not sys.stdin.isatty():
                _refuse(host, db)
            # Bound before the first account is asked for: a port in use is told first.
            sock = listening_socket(host, port)
            if users == 0 and sys.stdin.isatty():
                _first_account(store)
                users = count_users(store)
        finally:
            store.close()
        try:
            if users == 0 and not loopback:
                _refuse(host, db)
            _serve(sock, db, cfg, host, port, users == 0 and loopback, tls_cert, tls_key)
        finally:
            sock.close()


def _refuse(host: str, db: Path) -> None:
    raise ConfigError(
        f"refusing to listen on {host} with no account: create one with "
        f"`vigile user add NAME --db {db}` first"
    )


def _serve(
    sock: socket.socket,
    db: Path,
    cfg: Config,
    host: str,
    port: int,
    allow_setup: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    import uvicorn

    from vigile.web.access import StoreAccess
    from vigile.web.app import LOOPBACK_HOSTS, create_app

    loopback = is_loopback(host)
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
    warning = cleartext_warning(host, tls_cert is not None)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,  # an idle browser connection must not block a stop
            access_log=False,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn stopped the console and re-raised it
        return
    if not server.started:  # uvicorn logged why (a TLS key that does not load, …)
        raise typer.Exit(3)
