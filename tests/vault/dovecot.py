"""A throwaway Dovecot for the vault tests and benchmark.

The server runs unprivileged from a temporary folder with a configuration written here: a
passwd-file, Maildir homes, one IMAP listener on 127.0.0.1 at a free port. When the tests
run as root, Dovecot runs as ``nobody`` (its login process refuses root). ``timeout`` caps
its life so it stops by itself even if the test process dies; ``running_dovecot`` stops it first.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigile.vault.settings import ImapAccount

PASSWORD = "s3cret-ünï"
PASSWORD_ENV = "VIGILE_TEST_IMAP_PASSWORD"
LIFETIME_S = 900

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = vigile-test-{port}
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {root}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:~/Maildir
first_valid_uid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int
    tls_port: int
    uid: int
    gid: int
    process: subprocess.Popen[bytes] | None = None

    def run_as(self) -> dict[str, object]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []} if os.getuid() == 0 else {}

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["timeout", str(LIFETIME_S), "dovecot", "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self.run_as(),  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        log = (self.root / "dovecot.log").read_text(errors="replace")
        raise RuntimeError(f"dovecot did not start:\n{log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def add_user(self, name: str) -> ImapAccount:
        # One passwd-file per user: Dovecot re-checks a passwd-file at most once a second,
        # so a user appended to a shared file could be refused for up to a second.
        line = f"{name}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{self.root}/home/{name}\n"
        (self.root / "users" / name).write_text(line, encoding="utf-8")
        return ImapAccount(
            name=name,
            host="127.0.0.1",
            port=self.port,
            security="plain",
            username=name,
            password_env=PASSWORD_ENV,
            timeout=20,
        )

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["doveadm", "-c", str(self.root / "dovecot.conf"), *args],
            capture_output=True,
            text=True,
            check=True,
            **self.run_as(),  # type: ignore[call-overload]
        )
        return str(done.stdout)


def account_toml(acc: ImapAccount, timeout: float | None = None) -> str:
    """The ``[[vault.accounts]]`` table of ``acc`` (a plain-IMAP loopback account), with
    ``timeout`` in place of the account's own if given."""
    return f"""
[[vault.accounts]]
name = "{acc.name}"
host = "{acc.host}"
port = {acc.port}
security = "plain"
username = "{acc.username}"
password_env = "{acc.password_env}"
timeout = {acc.timeout if timeout is None else timeout:g}
"""


def write_tls_certificate(folder: Path) -> None:
    """A self-signed certificate for 127.0.0.1 and localhost (``ca.pem`` = the cert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigile test dovecot")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "ca.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


#: Temporary folders of Dovecots started here are named so.
PREFIX = "vigile-dovecot-"


def remove_stale_folders(older_than: float = 600.0) -> list[Path]:
    """Remove the folders of Dovecots gone without their folder (their test or bench was
    killed): no running Dovecot (``run/master.pid`` names no live process) and nothing
    changed for ``older_than`` seconds, so a folder being set up is left alone."""
    removed = []
    for root in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            pid = int((root / "run" / "master.pid").read_text().split()[0])
            os.kill(pid, 0)
            continue  # running
        except PermissionError:
            continue  # running, as another user
        except (OSError, ValueError, IndexError):
            pass  # no pid file, unreadable, or no such process
        try:
            if time.time() - root.stat().st_mtime < older_than:
                continue
        except OSError:
            continue
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """Start a Dovecot in a new temporary folder; stop it and remove the folder on exit.

    Folders left by earlier runs that were killed are removed first."""
    remove_stale_folders()
    if os.getuid() == 0:
        entry = pwd.getpwnam("nobody")
        uid, gid = entry.pw_uid, entry.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    port, tls_port = _free_port(), _free_port()
    user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    for sub in ("run", "state", "home", "users"):
        (root / sub).mkdir()
    write_tls_certificate(root / "tls")
    config = CONFIG.format(root=root, port=port, tls_port=tls_port, user=user, group=group)
    (root / "dovecot.conf").write_text(config)
    for path in (root, *root.rglob("*")):
        os.chown(path, uid, gid)
    root.chmod(0o755)
    os.environ[PASSWORD_ENV] = PASSWORD
    server = Dovecot(root, port, tls_port, uid, gid)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
