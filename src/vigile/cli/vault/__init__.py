"""``vigile vault``: back up mail accounts, list, verify, restore and prune the vault.

One module per group of sub-commands; importing one registers its commands on
``vault_app``. ``MODULES`` is the one place that says in what order ``vigile vault
--help`` lists them.
"""

from __future__ import annotations

from importlib import import_module

import typer

from vigile.cli.vault.common import vault_app

#: Sub-command modules, in the order ``vigile vault --help`` lists them.
MODULES = ("backup", "listing", "restore", "prune")

for _module in MODULES:
    import_module(f"vigile.cli.vault.{_module}")


def register(app: typer.Typer) -> None:
    app.add_typer(vault_app)
