"""IMAP source and restore target, over IMAPClient (and imaplib for the bulk FETCHes).

IMAPClient rather than bare stdlib ``imaplib`` for everything but the two bulk FETCHes,
because it handles TLS, STARTTLS, LOGIN, AUTHENTICATE PLAIN, XOAUTH2, modified UTF-7
folder names, LIST, STATUS, SEARCH and APPEND for us. Its pure-Python response lexer is,
however, the bottleneck of a full backup, so message listings and bodies are fetched on
the underlying imaplib connection and parsed with a pattern per item (measured 2.3x
faster end to end; docs/benchmarks.md).

Every source call examines folders read-only (``EXAMINE``) and fetches with ``BODY.PEEK``;
connection failures become :class:`SourceConnectionError` so :class:`RetryingSource` can
reconnect; a refused login becomes :class:`SourceAuthError`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import imaplib
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
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
_UID_IN_FETCH = re.compile(rb"[( ]UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_MONTHS = {
    m.encode(): i
    for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)
}


def parse_internaldate(value: bytes) -> datetime:
    """An IMAP date-time (RFC 3501 ``date-time``), without locale-dependent ``strptime``.

    >>> parse_internaldate(b" 3-Jan-2024 10:05:09 +0100").isoformat()
    '2024-01-03T10:05:09+01:00'
    """
    day, month, rest = value.strip().split(b"-", 2)
    year, clock, zone = rest.split()
    hh, mm, ss = (int(x) for x in clock.split(b":"))
    sign = -1 if zone[:1] == b"-" else 1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
    return datetime(int(year), _MONTHS[month], int(day), hh, mm, ss, tzinfo=timezone(offset))


def message_set(uids: Sequence[int]) -> str:
    """An IMAP message set with runs collapsed.

    >>> message_set([1, 2, 3, 7, 9, 10])
    '1:3,7,9:10'
    """
    parts = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(parts)


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
        return self._guard(partial(self._fetch_meta, sorted(uids)))

    def _fetch_meta(self, uids: list[int]) -> list[MessageMeta]:
        """``UID FETCH uids (FLAGS RFC822.SIZE INTERNALDATE)``, parsed with regular expressions.

        By hand for the same measured reason as :meth:`_fetch_bodies`: these three items
        are atoms, a number and a quoted date (RFC 3501 section 7.4.2), so a pattern per
        item is exact; responses without a size (unsolicited flag updates) are skipped.
        """
        typ, data = self.client._imap.uid(
            "FETCH", message_set(uids), "(" + " ".join(META_ITEMS) + ")"
        )
        if typ != "OK":
            raise SourceError(f"{self._settings.host}: FETCH failed: {data!r}")
        out = {}
        for line in data:
            text = line[0] if isinstance(line, tuple) else line
            if not isinstance(text, bytes):
                continue
            uid, size = _UID_IN_FETCH.search(text), _SIZE.search(text)
            flags, date = _FLAGS.search(text), _DATE.search(text)
            if uid and size and flags and date:
                meta = MessageMeta(
                    int(uid.group(1)),
                    int(size.group(1)),
                    parse_internaldate(date.group(1)),
                    _flags(flags.group(1).split()),
                )
                out[meta.uid] = meta
        return sorted(out.values(), key=lambda m: m.uid)

    def fetch(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        self._examine(folder)
        for start in range(0, len(metas), FETCH_BATCH):
            batch = metas[start : start + FETCH_BATCH]
            bodies = self._guard(partial(self._fetch_bodies, [m.uid for m in batch]))
            for meta in batch:
                raw = bodies.get(meta.uid)
                if raw is not None:  # else expunged since it was listed
                    yield FetchedMessage(meta, raw)

    def _fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        """``UID FETCH uids (BODY.PEEK[])`` on the underlying imaplib connection.

        Written against imaplib rather than through IMAPClient.fetch because IMAPClient's
        pure-Python lexer walks every response and made body fetching ~1.5x slower for
        the same bytes (measured, docs/benchmarks.md). imaplib already splits each body
        out as a literal; only the UID needs finding in the text before it.
        """
        imap = self.client._imap
        typ, data = imap.uid("FETCH", message_set(uids), "(BODY.PEEK[])")
        if typ != "OK":
            raise SourceError(f"{self._settings.host}: FETCH failed: {data!r}")
        bodies = {}
        for item in data:
            if isinstance(item, tuple) and b"BODY[]" in item[0]:
                found = _UID_IN_FETCH.search(item[0])
                if found is not None:
                    bodies[int(found.group(1))] = bytes(item[1])
        return bodies

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

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        """Replace one message's flags (the folder is selected read-write for this)."""
        self.source._selected = None
        self.source._guard(lambda: self.client.select_folder(folder))
        self.source._guard(lambda: self.client.set_flags([uid], list(flags), silent=True))

    def close(self) -> None:
        self.source.close()
