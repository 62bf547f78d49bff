"""IMAP source and restore target, over IMAPClient.

IMAPClient (rather than stdlib ``imaplib``) because it parses FETCH responses, literals,
modified UTF-7 folder names and CONDSTORE modifiers for us; hand-parsing ``imaplib``'s raw
tuples is where IMAP tools usually break. TLS, STARTTLS, LOGIN, AUTHENTICATE PLAIN and
XOAUTH2 (RFC 7628 style bearer token) are all IMAPClient calls.

Every source call examines folders read-only (``EXAMINE``) and fetches with ``BODY.PEEK``;
connection failures become :class:`SourceConnectionError` so :class:`RetryingSource` can
reconnect; a refused login becomes :class:`SourceAuthError`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import imaplib
import ssl
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from vigile.vault.errors import SourceAuthError, SourceConnectionError, SourceError
from vigile.vault.settings import ImapAccount
from vigile.vault.source import FetchedMessage, FolderStatus, MessageMeta

#: Messages per FETCH of bodies: bounds memory while keeping round trips few.
FETCH_BATCH = 256
META_ITEMS = ["FLAGS", "RFC822.SIZE", "INTERNALDATE"]

T = TypeVar("T")


def _flags(raw: Sequence[bytes | str]) -> tuple[str, ...]:
    out = (f.decode() if isinstance(f, bytes) else f for f in raw)
    return tuple(sorted(f for f in out if f != "\\Recent"))


def connect(account: ImapAccount) -> IMAPClient:
    """Open an authenticated connection (the secret is fetched here, never logged)."""
    try:
        context = ssl.create_default_context(cafile=account.ca_file)
        client = IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security == "tls",
            ssl_context=context,
            timeout=account.timeout,
        )
        client.normalise_times = False
        if account.security == "starttls":
            client.starttls(context)
    except ssl.SSLCertVerificationError as e:  # permanent: retrying cannot fix a certificate
        raise SourceError(
            f"{account.host}:{account.port}: {e.verify_message} ({e.reason})"
        ) from None
    except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error) as e:
        raise SourceConnectionError(f"{account.host}:{account.port}: cannot connect: {e}") from None
    secret = account.secret()
    try:
        if account.auth == "xoauth2":
            client.oauth2_login(account.username, secret)
        elif account.auth == "plain" or not secret.isascii():
            # LOGIN takes ASCII only; SASL PLAIN carries UTF-8 (RFC 4616).
            client.plain_login(account.username, secret)
        else:
            client.login(account.username, secret)
    except (LoginError, imaplib.IMAP4.error):
        raise SourceAuthError(
            f"{account.host}: login refused for {account.username!r} ({account.auth})"
        ) from None
    except (OSError, imaplib.IMAP4.abort) as e:
        raise SourceConnectionError(f"{account.host}: connection lost at login: {e}") from None
    return client


class ImapSource:
    """A :class:`~vigile.vault.source.Source` over one IMAP connection."""

    def __init__(self, account: ImapAccount) -> None:
        self.account = account.name
        self._settings = account
        self.client = connect(account)
        self._selected: str | None = None
        self.condstore = account.condstore and self.client.has_capability("CONDSTORE")
        if self.condstore:
            self._guard(lambda: self.client.enable("CONDSTORE"))

    def _guard(self, op: Callable[[], T]) -> T:
        try:
            return op()
        except (OSError, imaplib.IMAP4.abort) as e:  # TimeoutError is an OSError
            self._selected = None
            raise SourceConnectionError(f"{self._settings.host}: connection lost: {e}") from None
        except (IMAPClientError, imaplib.IMAP4.error) as e:
            raise SourceError(f"{self._settings.host}: {e}") from None

    def folders(self) -> list[str]:
        listed = self._guard(lambda: self.client.list_folders())
        names = [
            name
            for flags, _, name in listed
            if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
        ]
        patterns = self._settings.folders
        return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))

    def status(self, folder: str) -> FolderStatus:
        items = ["UIDVALIDITY", "UIDNEXT", "MESSAGES"]
        if self.condstore:
            items.append("HIGHESTMODSEQ")
        st: dict[bytes, Any] = self._guard(lambda: self.client.folder_status(folder, items))
        modseq = st.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            folder,
            int(st[b"UIDVALIDITY"]),
            int(st[b"UIDNEXT"]),
            int(st[b"MESSAGES"]),
            int(modseq) if modseq is not None else None,
        )

    def _examine(self, folder: str) -> None:
        if self._selected != folder:
            self._guard(lambda: self.client.select_folder(folder, readonly=True))
            self._selected = folder

    def uids(self, folder: str) -> list[int]:
        self._examine(folder)
        return sorted(self._guard(lambda: self.client.search("ALL")))

    def metadata(self, folder: str, changed_since: int | None = None) -> list[MessageMeta]:
        # SEARCH first, then FETCH those UIDs: IMAPClient 4 drops FETCH responses for
        # messages not named in the request, so "1:*" cannot be used. SEARCH MODSEQ is the
        # CONDSTORE way to ask which messages changed (RFC 7162 section 3.1.5).
        self._examine(folder)
        criteria: list[str | int] = ["ALL"] if changed_since is None else ["MODSEQ", changed_since]
        uids = self._guard(lambda: self.client.search(criteria))
        if not uids:
            return []
        rows = self._guard(partial(self.client.fetch, sorted(uids), META_ITEMS))
        return sorted(
            (
                MessageMeta(uid, int(r[b"RFC822.SIZE"]), r[b"INTERNALDATE"], _flags(r[b"FLAGS"]))
                for uid, r in rows.items()
                if b"RFC822.SIZE" in r
            ),
            key=lambda m: m.uid,
        )

    def fetch(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        # Only the body is fetched: flags, size and date came with the listing, and asking
        # for them again doubles the response text IMAPClient's lexer has to walk.
        self._examine(folder)
        for start in range(0, len(metas), FETCH_BATCH):
            batch = metas[start : start + FETCH_BATCH]
            uids = [m.uid for m in batch]
            rows = self._guard(partial(self.client.fetch, uids, ["BODY.PEEK[]"]))
            for meta in batch:
                r = rows.get(meta.uid)
                if r is not None and b"BODY[]" in r:  # else expunged since it was listed
                    yield FetchedMessage(meta, bytes(r[b"BODY[]"]))

    def close(self) -> None:
        with contextlib.suppress(
            OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error, IMAPClientError
        ):
            self.client.logout()  # may already be gone


class ImapTarget:
    """A live mailbox to restore into: list what is there, append what is missing."""

    def __init__(self, account: ImapAccount) -> None:
        self.source = ImapSource(account)
        self.client = self.source.client

    def folders(self) -> set[str]:
        return {name for _, _, name in self.source._guard(lambda: self.client.list_folders())}

    def ensure_folder(self, folder: str) -> None:
        if folder not in self.folders():
            self.source._guard(lambda: self.client.create_folder(folder))

    def headers(self, folder: str) -> dict[int, tuple[bytes, int, tuple[str, ...]]]:
        """UID -> (header bytes, size, flags) for every message in ``folder``."""
        if folder not in self.folders():
            return {}
        self.source._examine(folder)
        uids = self.source._guard(lambda: self.client.search("ALL"))
        items = ["BODY.PEEK[HEADER]", "RFC822.SIZE", "FLAGS"]
        rows = self.source._guard(partial(self.client.fetch, uids, items)) if uids else {}
        return {
            uid: (bytes(r[b"BODY[HEADER]"]), int(r[b"RFC822.SIZE"]), _flags(r[b"FLAGS"]))
            for uid, r in rows.items()
            if b"BODY[HEADER]" in r
        }

    def append(self, folder: str, raw: bytes, flags: Sequence[str], when: datetime) -> None:
        self.source._selected = None
        self.source._guard(
            lambda: self.client.append(folder, raw, flags=list(flags), msg_time=when)
        )

    def close(self) -> None:
        self.source.close()
