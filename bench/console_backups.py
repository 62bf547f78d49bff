"""How fast the console's Backups pages answer on a 20,000-message vault.

    python -m bench.console_backups [--messages 20000] [--folders 50] [--days 30] [--runs 5]

Starts a throwaway Dovecot (as the vault tests and ``bench.vault`` do) with two accounts
of ``--messages`` each, written straight into their Maildirs: ``spread`` in ``--folders``
folders, ``inbox`` all in one. Backs both up into a key-file vault, then ``--days`` more
no-change runs of each (a month of nightly snapshots), then times each Backups page and
API route through the console app (FastAPI's test client, logged in; best of ``--runs``,
milliseconds), the overview with its one-line backup summary, and the same status read
on a passphrase vault (argon2id at the default cost: the first request derives the keys,
later ones reuse them). Prints the load average and peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from tests.vault.dovecot import Dovecot, running_dovecot

from bench.common import machine
from bench.vault import BENCH_PASSWORD, warm_up, write_maildir
from vigile.config import load_config
from vigile.store.duckdb import DuckDBStore
from vigile.vault.backup import backup_account
from vigile.vault.crypto import key_file_kdf
from vigile.vault.imap import ImapSource
from vigile.vault.repo import Vault
from vigile.vault.settings import ImapAccount
from vigile.web.access import StoreAccess
from vigile.web.app import create_app
from vigile.web.auth import SESSION_COOKIE, add_user, start_session

ACCOUNTS = ("spread", "inbox")


def add_account(server: Dovecot, name: str, messages: int, folders: int) -> ImapAccount:
    line = f"{name}:{{PLAIN}}{BENCH_PASSWORD}:{server.uid}:{server.gid}::{server.root}/home/{name}"
    (server.root / "users" / name).write_text(line + "\n")
    write_maildir(server.root / "home" / name, messages, folders, server.uid, server.gid)
    warm_up(server, name)
    env = "BENCH_IMAP_PASSWORD"
    return ImapAccount(name, "127.0.0.1", server.port, "plain", name, password_env=env)


def fill_vault(work: Path, accounts: list[ImapAccount], days: int) -> float:
    """A full backup of each account, then ``days`` no-change runs; returns seconds."""
    key = os.urandom(32)
    (work / "key").write_bytes(key)
    Vault.create(work / "vault", key, key_file_kdf(key))
    start = time.perf_counter()
    vault = Vault.open(work / "vault", key, writable=True)
    try:
        for _ in range(days + 1):
            for acc in accounts:
                source = ImapSource(acc)
                backup_account(vault, source)
                source.close()
    finally:
        vault.close()
    return time.perf_counter() - start


def best_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def logged_in(work: Path, config: Path) -> TestClient:
    db = work / f"console-{config.stem}.duckdb"
    store = DuckDBStore(db)
    add_user(store, "admin", "bench password 1234")
    token, _ = start_session(store, "admin")
    store.close()
    client = TestClient(
        create_app(StoreAccess(db), load_config(config)), base_url="http://127.0.0.1"
    )
    client.cookies.set(SESSION_COOKIE, token)
    return client


def get(client: TestClient, url: str) -> Callable[[], object]:
    def fetch() -> object:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
        return r

    return fetch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["BENCH_IMAP_PASSWORD"] = BENCH_PASSWORD
    os.environ.pop("VIGILE_VAULT_PASSPHRASE", None)
    with running_dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        accounts = [
            add_account(server, "spread", args.messages, args.folders),
            add_account(server, "inbox", args.messages, 1),
        ]
        filled = fill_vault(work, accounts, args.days)
        config = work / "vigile.toml"
        text = '[vault]\npath = "vault"\nkey_file = "key"\n'
        for acc in accounts:
            text += f'\n[[vault.accounts]]\nname = "{acc.name}"\nhost = "127.0.0.1"\n'
            text += f'port = {acc.port}\nsecurity = "plain"\nusername = "{acc.name}"\n'
            text += 'password_env = "BENCH_IMAP_PASSWORD"\n'
        config.write_text(text)
        client = logged_in(work, config)
        newest = {a: client.get(f"/api/backups/{a}/snapshots").json()[0] for a in ACCOUNTS}
        spread, inbox = newest["spread"]["snapshot"], newest["inbox"]["snapshot"]
        folder = "Folder01"
        print(f"machine: {machine()}")
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(
            f"vault: 2 accounts x {args.messages:,} messages ({args.folders} folders / 1 folder), "
            f"{2 * (args.days + 1)} snapshots; filled in {filled:.1f} s"
        )
        print(f"best of {args.runs}, milliseconds")
        routes = [
            ("GET /backups (both accounts, last verify)", "/backups"),
            ("GET /api/backups", "/api/backups"),
            ("GET / (overview with the backup line)", "/"),
            (f"GET /backups/spread ({args.days + 1} snapshots)", "/backups/spread"),
            (f"GET /backups/spread/<newest> ({args.folders} folders)", f"/backups/spread/{spread}"),
            (
                f"  ... ?folder={folder} ({args.messages // args.folders} messages)",
                f"/backups/spread/{spread}?folder={folder}",
            ),
            (
                f"GET /backups/inbox/<newest>?folder=INBOX (500 of {args.messages:,})",
                f"/backups/inbox/{inbox}?folder=INBOX",
            ),
            (
                "GET /api/.../messages?folder=INBOX&limit=5000",
                f"/api/backups/inbox/snapshots/{inbox}/messages?folder=INBOX&limit=5000",
            ),
        ]
        for label, url in routes:
            print(f"{label:<62} {best_ms(get(client, url), args.runs):>8.1f}")
        client.close()

        phrase = work / "phrase"
        phrase.mkdir()
        Vault.create(phrase / "vault", b"a bench passphrase")  # argon2id, default cost
        (phrase / "vigile.toml").write_text(
            '[vault]\npath = "vault"\npassphrase_command = "echo a bench passphrase"\n'
        )
        client = logged_in(phrase, phrase / "vigile.toml")
        first = best_ms(get(client, "/api/backups"), 1)
        label = "GET /api/backups, passphrase vault: first request (argon2id)"
        print(f"{label:<62} {first:>8.1f}")
        label = "  ... later requests (keys kept)"
        print(f"{label:<62} {best_ms(get(client, '/api/backups'), args.runs):>8.1f}")
        client.close()
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the process (vault filling included): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
