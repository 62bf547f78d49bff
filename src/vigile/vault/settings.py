"""Vault settings from the ``[vault]`` section of vigile.toml.

Example::

    [vault]
    path = "/srv/vigile-vault"
    passphrase_command = "pass show vigile/vault"   # or key_file = "/root/vault.key"
    pack_size_mb = 16
    stale_after_hours = 26     # the console warns when an account's newest snapshot is older

    [[vault.accounts]]
    name = "alice"
    host = "mail.example.org"
    port = 993
    security = "tls"            # tls | starttls | plain (plain only to a loopback address)
    username = "alice@example.org"
    auth = "login"              # login | plain | xoauth2
    password_command = "pass show mail/alice"  # or password_env = "ALICE_PASSWORD"
    # oauth2_token_command = "oauth2-token alice"  (with auth = "xoauth2"),
    # or oauth2_token_env = "ALICE_TOKEN" for a token you supply
    folders = ["*"]             # fnmatch patterns; default every folder
    # condstore = false         # ignore CONDSTORE even if offered (always scan UIDs+flags)
    # timeout = 60              # seconds per network operation
    # ca_file = "/etc/ssl/mail-ca.pem"  # trust this CA instead of the system store

Secrets are never stored in the file itself: they come from a command's standard output or
an environment variable, are read when a connection opens, and never logged.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigile.vault.errors import VaultConfigError

SECURITY = ("tls", "starttls", "plain")
AUTH = ("login", "plain", "xoauth2")


#: The environment variable that holds the vault passphrase.
PASSPHRASE_ENV = "VIGILE_VAULT_PASSPHRASE"


def run_secret_command(
    command: str, what: str, *, interactive: bool = True, timeout: float = 60
) -> str:
    """First line of a command's output, for passwords and tokens (never echoed).

    ``interactive=False`` gives the command no standard input (a server has no one to
    type into a prompt), so a command that would ask fails instead of waiting.
    """
    stdin = None if interactive else subprocess.DEVNULL
    try:
        done = subprocess.run(
            shlex.split(command), stdin=stdin, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VaultConfigError(f"{what}: command failed to run: {type(e).__name__}") from None
    if done.returncode != 0:
        raise VaultConfigError(f"{what}: command exited with status {done.returncode}")
    return done.stdout.splitlines()[0] if done.stdout else ""


@dataclass(frozen=True)
class ImapAccount:
    """One IMAP account to back up (no secret held here, only where to get it)."""

    name: str
    host: str
    port: int
    security: str
    username: str
    auth: str = "login"
    password_command: str | None = None
    password_env: str | None = None
    oauth2_token_command: str | None = None
    oauth2_token_env: str | None = None
    folders: tuple[str, ...] = ("*",)
    timeout: float = 60.0
    condstore: bool = True
    ca_file: Path | None = None

    def __repr__(self) -> str:  # keeps secret sources out of tracebacks and logs
        return f"ImapAccount({self.name!r}, {self.username}@{self.host}:{self.port})"

    def secret(self) -> str:
        """The password or OAuth2 access token, fetched now."""
        where = f"account {self.name!r}"
        if self.auth == "xoauth2":
            if self.oauth2_token_env:
                return _env_value(self.oauth2_token_env, where)
            if not self.oauth2_token_command:
                raise VaultConfigError(
                    f"{where}: auth = xoauth2 needs oauth2_token_command or oauth2_token_env"
                )
            return run_secret_command(self.oauth2_token_command, f"{where} oauth2_token_command")
        if self.password_env:
            return _env_value(self.password_env, where)
        if self.password_command:
            return run_secret_command(self.password_command, f"{where} password_command")
        raise VaultConfigError(f"{where}: set password_command or password_env")


def _env_value(name: str, where: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise VaultConfigError(f"{where}: environment variable {name} unset")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_account(entry: dict[str, Any], where: str, root: Path = Path()) -> ImapAccount:
    """Validate one ``[[vault.accounts]]`` table."""
    for key in ("name", "host", "username"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise VaultConfigError(f"{where}: {key} is required")
    security = entry.get("security", "tls")
    if security not in SECURITY:
        raise VaultConfigError(f"{where}: security must be one of {', '.join(SECURITY)}")
    if security == "plain" and not _is_loopback(entry["host"]):
        raise VaultConfigError(f"{where}: security = plain is allowed only to a loopback host")
    auth = entry.get("auth", "login")
    if auth not in AUTH:
        raise VaultConfigError(f"{where}: auth must be one of {', '.join(AUTH)}")
    folders = entry.get("folders", ["*"])
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise VaultConfigError(f"{where}: folders must be a list of patterns")
    return ImapAccount(
        name=entry["name"],
        host=entry["host"],
        port=int(entry.get("port", 993 if security == "tls" else 143)),
        security=security,
        username=entry["username"],
        auth=auth,
        password_command=entry.get("password_command"),
        password_env=entry.get("password_env"),
        oauth2_token_command=entry.get("oauth2_token_command"),
        oauth2_token_env=entry.get("oauth2_token_env"),
        folders=tuple(folders),
        timeout=float(entry.get("timeout", 60)),
        condstore=bool(entry.get("condstore", True)),
        ca_file=root / entry["ca_file"] if entry.get("ca_file") else None,
    )


@dataclass(frozen=True)
class VaultSettings:
    """The ``[vault]`` section."""

    path: Path | None
    passphrase_command: str | None
    key_file: Path | None
    pack_size: int
    accounts: tuple[ImapAccount, ...]
    stale_after_hours: float = 26.0

    def account(self, name: str) -> ImapAccount:
        for a in self.accounts:
            if a.name == name:
                return a
        known = ", ".join(a.name for a in self.accounts) or "none configured"
        raise VaultConfigError(f"no account {name!r} in [[vault.accounts]] ({known})")


def parse_settings(section: dict[str, Any], base: Path | None) -> VaultSettings:
    """Validate the ``[vault]`` section; relative paths are relative to the config file."""
    root = base.parent if base is not None else Path.cwd()
    accounts = []
    names: set[str] = set()
    for i, entry in enumerate(section.get("accounts", [])):
        account = parse_account(entry, f"[[vault.accounts]] #{i + 1}", root)
        if account.name in names:
            raise VaultConfigError(f"[[vault.accounts]]: account {account.name!r} appears twice")
        names.add(account.name)
        accounts.append(account)
    path = section.get("path")
    key_file = section.get("key_file")
    return VaultSettings(
        path=root / path if path else None,
        passphrase_command=section.get("passphrase_command"),
        key_file=root / key_file if key_file else None,
        pack_size=int(float(section.get("pack_size_mb", 16)) * 1024 * 1024),
        accounts=tuple(accounts),
        stale_after_hours=_positive(section.get("stale_after_hours", 26), "stale_after_hours"),
    )


def _positive(value: object, key: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0:
        raise VaultConfigError(f"[vault] {key} must be a positive number, not {value!r}")
    return number


def secret_key_file(settings: VaultSettings, key_file: Path | None = None) -> Path | None:
    """The key file the vault secret is read from, or ``None`` if it is a passphrase.

    ``key_file`` (the command line's) comes first; then ``$VIGILE_VAULT_PASSPHRASE``
    overrides ``[vault] key_file``.
    """
    return key_file or (None if os.environ.get(PASSPHRASE_ENV) else settings.key_file)


def stored_secret(
    settings: VaultSettings,
    key_file: Path | None = None,
    *,
    interactive: bool = True,
    timeout: float = 60,
) -> bytes | None:
    """The vault secret from where it is kept, or ``None`` if no source is set.

    In order: ``key_file``, ``$VIGILE_VAULT_PASSPHRASE``, ``[vault] key_file``,
    ``[vault] passphrase_command``. The CLI prompts when this gives ``None``; the console
    never does (``interactive=False`` also keeps the command away from any terminal).
    """
    path = secret_key_file(settings, key_file)
    if path is not None:
        try:
            return path.read_bytes()
        except OSError as e:
            raise VaultConfigError(f"{path}: cannot read key file: {e.strerror}") from None
    if value := os.environ.get(PASSPHRASE_ENV):
        return value.encode()
    if settings.passphrase_command:
        what = "passphrase_command"
        command = settings.passphrase_command
        return run_secret_command(command, what, interactive=interactive, timeout=timeout).encode()
    return None
