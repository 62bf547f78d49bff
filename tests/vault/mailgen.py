"""Generated mail for the vault tests and benchmark, and a way to read a mailbox back.

Messages are built with the stdlib ``email`` package (SMTP policy, CRLF line ends): plain
and HTML parts, binary attachments, RFC 2047 non-ASCII headers, and some large ones.
Everything is derived from a seed, so a run is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

from imapclient import IMAPClient

from vigile.vault.settings import ImapAccount

NAMES = ["Zoë Ørsted", "José Müller", "Łukasz Żak", "李雷", "Amélie Poulain", "Bob Smith"]
WORDS = [
    "rapport",
    "réunion",
    "facture",
    "projet",
    "sécurité",
    "incident",
    "serveur",
    "backup",
    "été",
    "naïve",
    "Ω",
]
FLAG_CHOICES = [(), ("\\Seen",), ("\\Seen", "\\Flagged"), ("\\Answered", "\\Seen"), ("$Label1",)]


def make_message(rng: random.Random, n: int, large: bool = False) -> bytes:
    """One message; ``large`` adds a ~1.5 MB attachment."""
    msg = EmailMessage(policy=SMTP)
    sender, rcpt = rng.sample(NAMES, 2)
    msg["From"] = Address(sender, "sender", "example.org")
    msg["To"] = Address(rcpt, "rcpt", "example.net")
    msg["Subject"] = f"{rng.choice(WORDS)} {rng.choice(WORDS)} n°{n}"
    msg["Message-ID"] = f"<{n}.{rng.getrandbits(48):x}@example.org>"
    msg["Date"] = "Mon, 01 Jan 2024 10:00:00 +0100"
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 400)))
    msg.set_content(body)
    if rng.random() < 0.3:
        msg.add_alternative(f"<p>{body}</p>", subtype="html")
    if large or rng.random() < 0.2:
        size = 1_500_000 if large else rng.randint(1_000, 40_000)
        msg.add_attachment(
            rng.randbytes(size),
            maintype="application",
            subtype="octet-stream",
            filename=f"pièce-{n}.bin",
        )
    return msg.as_bytes()


@dataclass(frozen=True)
class Stored:
    """A message as a mailbox holds it."""

    raw: bytes
    flags: tuple[str, ...]
    internaldate: datetime


def open_client(account: ImapAccount, password: str) -> IMAPClient:
    client = IMAPClient(account.host, port=account.port, ssl=False)
    client.normalise_times = False
    client.plain_login(account.username, password)
    return client


def expunge_first(account: ImapAccount, password: str, folder: str, count: int) -> None:
    """Delete and expunge the first ``count`` messages of ``folder``."""
    client = open_client(account, password)
    client.select_folder(folder)
    client.delete_messages(client.search("ALL")[:count])
    client.expunge()
    client.logout()


def fill(
    client: IMAPClient, folders: dict[str, int], seed: int, large: int = 0, start: int = 0
) -> None:
    """Append ``folders[name]`` generated messages to each folder (created if missing)."""
    rng = random.Random(seed)
    existing = {name for _, _, name in client.list_folders()}
    n = start
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for folder, count in folders.items():
        if folder not in existing:
            client.create_folder(folder)
        for _ in range(count):
            raw = make_message(rng, n, large=n < start + large)
            when = base + timedelta(minutes=rng.randint(0, 500_000))
            client.append(folder, raw, flags=list(rng.choice(FLAG_CHOICES)), msg_time=when)
            n += 1


def snapshot_state(client: IMAPClient) -> dict[str, list[Stored]]:
    """Every message of every folder: exact bytes, flags, internal date (sorted by bytes)."""
    state = {}
    for flags, _, name in client.list_folders():
        if b"\\Noselect" in flags:
            continue
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        rows = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}
        state[name] = sorted(
            (
                Stored(
                    bytes(r[b"BODY[]"]),
                    tuple(sorted(f.decode() for f in r[b"FLAGS"] if f != b"\\Recent")),
                    r[b"INTERNALDATE"],
                )
                for r in rows.values()
            ),
            key=lambda s: (s.raw, s.flags),
        )
    return state
