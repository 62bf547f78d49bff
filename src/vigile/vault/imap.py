"""IMAP source and restore target, over IMAPClient (and a pipelined reader for FETCH).

IMAPClient rather than bare stdlib ``imaplib`` for everything but the bulk FETCHes,
because it handles TLS, STARTTLS, LOGIN, AUTHENTICATE PLAIN, XOAUTH2, modified UTF-7
folder names, LIST, STATUS, SEARCH and APPEND for us. Message listings and bodies are
fetched on the underlying imaplib connection with ``imapstream.stream_fetch`` (pipelined,
streamed; see there why) and their items parsed with a pattern each.

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
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache, partial
from typing import Any, TypeVar, cast

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imapclient import as_pairs
from imapclient.response_parser import parse_response

from vigile.vault.errors import SourceAuthError, SourceConnectionError, SourceError
from vigile.vault.imapstream import (
    BadResponse,
    CommandQueue,
    Connection,
    FetchRefused,
    LineTooLong,
    Quick,
    Reader,
    Response,
    body_of,
    stream_commands,
    stream_fetch,
)
from vigile.vault.settings import ImapAccount
from vigile.vault.source import FetchedMessage, FolderStatus, MessageMeta

#: Messages per FETCH command of bodies: bounds memory (a command's messages can be held
#: until the one expected next arrives) while keeping commands few.
FETCH_BATCH = 256
#: Bytes read from the server at a time (at most): see _widen_read_buffer.
READ_BUFFER = 1 << 18
META_ITEMS = "(UID FLAGS RFC822.SIZE INTERNALDATE)"
FULL_ITEMS = "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])"

T = TypeVar("T")
R = TypeVar("R", Response | int, Quick | Response | int)
#: The items in the order Dovecot (and most servers) return them; else one pattern each.
_META = re.compile(rb'UID (\d+) FLAGS \(([^)]*)\) RFC822\.SIZE (\d+) INTERNALDATE "([^"]+)"')
#: A whole FETCH response line of a full download as Dovecot (and most servers) sends it,
#: items in the order asked and the message its literal: the quick path of stream_commands.
#: Its groups: UID, flags, size, internal date, literal size.
FULL_LINE = re.compile(
    rb"\* \d+ FETCH \(" + _META.pattern + rb" BODY\[\] \{(\d+)\}\r\n\Z", re.ASCII
)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_MONTHS = {
    m.encode(): i
    for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)
}
_MONTH_NUMBERS = {m.decode(): f"{i:02d}" for m, i in _MONTHS.items()}


def parse_internaldate(value: bytes) -> datetime:
    """An IMAP date-time (RFC 3501 ``date-time``), without locale-dependent ``strptime``.

    The fixed layout the RFC defines (``dd-Mon-yyyy hh:mm:ss +zzzz``, the day possibly
    space-padded) is rewritten as ISO 8601 for ``datetime.fromisoformat`` (in C: half the
    time of the general parse, once per message of a full backup); anything else is split
    into its fields. A value that is no date raises :class:`BadResponse`.

    >>> parse_internaldate(b" 3-Jan-2024 10:05:09 +0100").isoformat()
    '2024-01-03T10:05:09+01:00'
    >>> parse_internaldate(b"3-Jan-2024  10:05:09 -0130").isoformat()
    '2024-01-03T10:05:09-01:30'
    """
    try:
        return _internaldate(value)
    except (ValueError, KeyError, IndexError):
        raise BadResponse(f"INTERNALDATE {value[:40]!r} is not an IMAP date-time") from None


def _internaldate(value: bytes) -> datetime:
    text = value.decode("ascii", errors="replace")
    if len(text) == 26 and text[2] == text[6] == "-" and text[11] == text[20] == " ":
        iso_month = _MONTH_NUMBERS.get(text[3:6])
        if iso_month is not None:
            iso_day, iso_zone = text[0:2].replace(" ", "0"), f"{text[21:24]}:{text[24:26]}"
            iso = f"{text[7:11]}-{iso_month}-{iso_day}T{text[12:20]}{iso_zone}"
            return datetime.fromisoformat(iso)
    day, month, rest = value.strip().split(b"-", 2)
    year, clock, zone = rest.split()
    hh, mm, ss = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])  # time = 2DIGIT ":" ...
    return datetime(int(year), _MONTHS[month], int(day), hh, mm, ss, tzinfo=_zone(zone))


@lru_cache(maxsize=256)
def _zone(zone: bytes) -> timezone:
    sign = -1 if zone[:1] == b"-" else 1
    return timezone(timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign)


def _meta_of(response: Response) -> MessageMeta | None:
    """Flags, size and date from a FETCH response, parsed with a pattern per item.

    These items are atoms, a number and a quoted date (RFC 3501 section 7.4.2), so a
    pattern each is exact; a response that lacks one (an unsolicited flag update) gives
    ``None``.
    """
    found = _META.search(response.parts[0])
    if found is not None:
        uid, flags, size, date = found.groups()
        return MessageMeta(int(uid), int(size), parse_internaldate(date), _flag_list(flags))
    text = response.text
    uid_, size_ = response.uid, _SIZE.search(text)
    flags_, date_ = _FLAGS.search(text), _DATE.search(text)
    if not (uid_ and size_ and flags_ and date_):
        return None
    return MessageMeta(
        uid_, int(size_.group(1)), parse_internaldate(date_.group(1)), _flag_list(flags_.group(1))
    )


def fetched_of(item: Quick | Response | int) -> FetchedMessage | None:
    """The message in a full download's FETCH response (see :data:`FULL_LINE`), or ``None``
    for a completion or a response without flags, size, date and body.

    >>> quick = Quick((b"7", b"\\\\Seen", b"3", b"01-Feb-2024 10:00:00 +0000"), b"abc")
    >>> general = Response([b'* 1 FETCH (UID 7 FLAGS (\\\\Seen) INTERNALDATE '
    ...     b'"01-Feb-2024 10:00:00 +0000" RFC822.SIZE 3 BODY[] ', b")\\r\\n"], [b"abc"])
    >>> fetched_of(quick) == fetched_of(general) != None
    True
    """
    if type(item) is Quick:
        uid, flags, size, date = item.groups
        meta = MessageMeta(int(uid), int(size), parse_internaldate(date), _flag_list(flags))
        return FetchedMessage(meta, item.literal)
    if not isinstance(item, Response):
        return None
    found, body = _meta_of(item), body_of(item)
    return None if found is None or body is None else FetchedMessage(found, body)


def _full_fetch(after: int) -> bytes:
    """The command of a full download of the selected folder above UID ``after``."""
    return b"UID FETCH %d:* %s" % (after + 1, FULL_ITEMS.encode())


def _as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


def _folder_status(name: str, items: dict[bytes, Any]) -> FolderStatus:
    modseq = items.get(b"HIGHESTMODSEQ")
    return FolderStatus(
        name,
        int(items[b"UIDVALIDITY"]),
        int(items[b"UIDNEXT"]),
        int(items[b"MESSAGES"]),
        int(modseq) if modseq is not None else None,
    )


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
    try:
        out = [f.decode() if isinstance(f, bytes) else f for f in raw]
    except UnicodeDecodeError:  # flags are ASCII atoms (RFC 3501 section 9, flag-keyword)
        shown = b" ".join(f if isinstance(f, bytes) else f.encode() for f in raw)[:60]
        raise BadResponse(f"FLAGS ({shown!r}) are not IMAP flags") from None
    return tuple(sorted(f for f in out if f != "\\Recent"))


@lru_cache(maxsize=1024)
def _flag_list(raw: bytes) -> tuple[str, ...]:
    """Flags from the text inside ``FLAGS (...)``; a mailbox uses few distinct sets."""
    return _flags(raw.split())


def connect(account: ImapAccount) -> IMAPClient:
    """Open an authenticated connection (the secret is fetched here, never logged)."""
    try:
        # Loading the trust store costs tens of milliseconds: only when TLS is used.
        plain = account.security == "plain"
        context = None if plain else ssl.create_default_context(cafile=account.ca_file)
        client = IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security == "tls",
            ssl_context=context,
            timeout=account.timeout,
        )
        client.normalise_times = False
        if account.security == "starttls" and context is not None:
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


def _widen_read_buffer(imap: imaplib.IMAP4, size: int = READ_BUFFER) -> None:
    """Read the connection through a larger buffer than imaplib's 8 KiB.

    A full backup reads hundreds of MB; with 8 KiB at a time, the receive calls (and the
    GIL hand-overs each one costs) were a visible share of the backup's CPU time. Called
    between commands, when every response has been read and the old buffer is empty.
    """
    old = imap.file
    imap.file = imap.sock.makefile("rb", buffering=size)  # type: ignore[assignment]
    old.close()  # the socket stays open: only this reader's reference to it is released


@dataclass(frozen=True)
class _Ahead:
    """A folder whose EXAMINE and FETCH were sent behind the previous folder's FETCH: the
    stream their responses come on, its queue, and the two commands' positions in it."""

    folder: str
    stream: Iterator[Quick | Response | int]
    queue: CommandQueue
    examine: int
    fetch: int


class ImapSource:
    """A :class:`~vigile.vault.source.Source` over one IMAP connection."""

    def __init__(self, account: ImapAccount, fetch_batch: int = FETCH_BATCH) -> None:
        self.account = account.name
        self.fetch_batch = fetch_batch
        self._settings = account
        self.client = connect(account)
        self._selected: str | None = None
        self._broken = False
        #: A folder whose EXAMINE and FETCH were sent ahead (see fetch_folder).
        self._ahead: _Ahead | None = None
        self.condstore = account.condstore and self.client.has_capability("CONDSTORE")
        if self.condstore:
            self._guard(lambda: self.client.enable("CONDSTORE"))
        _widen_read_buffer(self.client._imap)

    def _guard(self, op: Callable[[], T]) -> T:
        self._check_usable()
        with self._errors():
            return op()

    def _check_usable(self) -> None:
        if self._broken:
            raise SourceConnectionError(f"{self._settings.host}: connection left mid-response")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map connection and protocol errors to the source's (see source.py)."""
        try:
            yield
        except (OSError, EOFError, imaplib.IMAP4.abort) as e:  # TimeoutError is an OSError
            self._selected = None
            raise SourceConnectionError(f"{self._settings.host}: connection lost: {e}") from None
        except FetchRefused as e:
            raise SourceError(f"{self._settings.host}: command refused: {e}") from None
        except (LineTooLong, BadResponse) as e:
            raise SourceError(f"{self._settings.host}: {e}") from None
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
        return self.statuses([folder])[0]

    def statuses(self, folders: Sequence[str]) -> list[FolderStatus]:
        """:meth:`status` of every folder, the STATUS commands pipelined (RFC 3501 section
        5.5): one round trip for all rather than one each."""
        items = "UIDVALIDITY UIDNEXT MESSAGES" + (" HIGHESTMODSEQ" if self.condstore else "")
        found = self._guard(partial(self._fetch_statuses, folders, items))
        # A server may spell a name back otherwise ("inbox" for INBOX): that folder is
        # asked again alone, its answer taken whatever name it carries.
        return [found.get(f) or self._status_alone(f, items) for f in folders]

    def _status_alone(self, folder: str, items: str) -> FolderStatus:
        st: dict[bytes, Any] = self._guard(lambda: self.client.folder_status(folder, items.split()))
        return _folder_status(folder, st)

    def _fetch_statuses(self, folders: Sequence[str], items: str) -> dict[str, FolderStatus]:
        quoted = (self.client._normalise_folder(f) for f in folders)
        commands = (b"STATUS " + _as_bytes(name) + f" ({items})".encode() for name in quoted)
        found = {}
        for response in self._stream_commands(commands, b" STATUS "):
            if not isinstance(response, int):
                st = self._status_of(response)
                found[st.name] = st
        return found

    def _status_of(self, response: Response) -> FolderStatus:
        """A ``* STATUS name (items)`` response, parsed as IMAPClient parses it."""
        parts = [*response.parts]
        parts[0] = parts[0].removeprefix(b"* STATUS ")
        parts[-1] = parts[-1].removesuffix(b"\r\n")
        # imaplib's shape, which the parser takes: (text up to a literal, literal)..., rest
        data: list[Any] = [
            (part + b"{%d}" % len(literal), literal)
            for part, literal in zip(parts, response.literals, strict=False)
        ]
        name, pairs = parse_response([*data, parts[-1]])
        if isinstance(name, int):  # a quoted number parses as a number (as in LIST)
            name = str(name)
        elif self.client.folder_encode:
            name = decode_utf7(name)
        elif isinstance(name, bytes):
            name = name.decode()
        return _folder_status(name, dict(as_pairs(pairs)))

    def _examine(self, folder: str) -> int | None:
        """Open ``folder`` read-only; the message count if it was opened just now."""
        if self._selected == folder:
            return None
        info = self._guard(lambda: self.client.select_folder(folder, readonly=True))
        self._selected = folder
        return int(info[b"EXISTS"]) if b"EXISTS" in info else None

    def uids(self, folder: str) -> list[int]:
        self._examine(folder)
        return sorted(self._guard(lambda: self.client.search("ALL")))

    def metadata(self, folder: str, changed_since: int | None = None) -> list[MessageMeta]:
        # One UID FETCH 1:* rather than SEARCH then FETCH; with CONDSTORE, the CHANGEDSINCE
        # modifier asks for messages changed since (RFC 7162 section 3.1.4).
        if self._examine(folder) == 0:
            return []  # an empty folder, just opened: nothing to ask for
        since = "" if changed_since is None else f"(CHANGEDSINCE {changed_since})"
        return self._guard(partial(self._fetch_meta, since))

    def _fetch_meta(self, modifiers: str) -> list[MessageMeta]:
        """Flags, size and date of every message (see :func:`_meta_of`)."""
        out = {}
        for response in self._stream(["1:*"], META_ITEMS, modifiers):
            if not isinstance(response, int) and (meta := _meta_of(response)) is not None:
                out[meta.uid] = meta
        return sorted(out.values(), key=lambda m: m.uid)

    def fetch(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        """Bodies in the given order, FETCH_BATCH per command, several commands in flight.

        A message is given up as expunged only once the command that asked for it has
        completed; one that arrives early (commands run concurrently) waits its turn.
        """
        self._examine(folder)
        step = self.fetch_batch
        sets = (
            message_set([m.uid for m in metas[i : i + step]]) for i in range(0, len(metas), step)
        )
        wanted = {m.uid for m in metas}
        got: dict[int, bytes] = {}
        completed: set[int] = set()
        following = 0
        for item in self._stream(sets, "(UID BODY.PEEK[])"):
            if isinstance(item, int):
                completed.add(item)
            else:
                uid, body = item.uid, body_of(item)
                if uid in wanted and body is not None:
                    got[uid] = body
            while following < len(metas):
                meta = metas[following]
                if meta.uid in got:
                    yield FetchedMessage(meta, got.pop(meta.uid))
                elif following // step not in completed:
                    break  # not here yet
                following += 1  # else expunged since it was listed

    def fetch_folder(
        self, folder: str, after: int = 0, next_folder: str | None = None
    ) -> Iterator[FetchedMessage]:
        """Metadata and bytes of every message above UID ``after``, in one FETCH.

        With ``next_folder``, its ``EXAMINE`` and ``FETCH`` are sent right behind this
        folder's (pipelined, RFC 3501 section 5.5: the server runs them once this FETCH
        completes), so that the server prepares them while this folder's last messages are
        stored; the next call, for that folder, reads their responses (and sends the
        commands of the folder after it). If they were refused (a folder deleted
        meanwhile), that call asks again as it would have without the hint.
        """
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.folder == folder and after == 0:
            refused_after = yield from self._read_ahead(ahead, next_folder)
            if refused_after is None:
                return
            after = refused_after
        if self._examine(folder) == 0:  # also refuses a connection left with ``ahead`` unread
            return
        queue = CommandQueue([_full_fetch(after)])
        start = partial(stream_commands, commands=queue, kind=b" FETCH ", quick=FULL_LINE)
        stream = self._pipelined(partial(start, window=3))
        following = self._send_ahead(queue, stream, folder, next_folder)
        for item in stream:
            if following is not None and item == 0 and type(item) is int:
                # This folder is complete; the rest of the stream is the next folder's.
                self._ahead, self._selected = following, None
                return
            message = self._message(item)
            # "n:*" names the last message even when its UID is below n (RFC 3501 6.4.8).
            if message is not None and message.meta.uid > after:
                yield message

    def _message(self, item: Quick | Response | int) -> FetchedMessage | None:
        """:func:`fetched_of`, its error mapped (it runs outside :meth:`_pipelined`)."""
        try:
            return fetched_of(item)
        except BadResponse as e:
            raise SourceError(f"{self._settings.host}: {e}") from None

    def _send_ahead(
        self,
        queue: CommandQueue,
        stream: Iterator[Quick | Response | int],
        current: str,
        then: str | None,
    ) -> _Ahead | None:
        """Queue the EXAMINE and FETCH of ``then`` behind ``current``'s (if any)."""
        if then is None or then == current:
            return None
        name = _as_bytes(self.client._normalise_folder(then))
        examine = queue.add(b"EXAMINE " + name)
        return _Ahead(then, stream, queue, examine, queue.add(_full_fetch(0)))

    def _read_ahead(
        self, ahead: _Ahead, then: str | None
    ) -> Generator[FetchedMessage, None, int | None]:
        """The messages of a folder from the commands sent ahead for it (and ``then``'s
        commands sent behind them); returns ``None`` once they have all been read, or, if
        the server refused them, the UID of the last message delivered (none in practice:
        it is the ``EXAMINE`` that is refused, and nothing after a refusal is delivered)."""
        following = self._send_ahead(ahead.queue, ahead.stream, ahead.folder, then)
        last = 0
        try:
            for item in ahead.stream:
                if type(item) is int:
                    if item == ahead.examine:
                        self._selected = ahead.folder
                    elif item == ahead.fetch and following is not None:
                        self._ahead, self._selected = following, None
                        return None
                elif (message := self._message(item)) is not None:
                    yield message
                    last = message.meta.uid
        except SourceConnectionError:
            raise
        except SourceError:
            if self._broken:  # not a refusal (an overlong line): left mid-response
                raise
            self._selected = None  # refused, every response read: the connection is in step
            return last
        return None

    def _stream(
        self, uid_sets: Iterable[str], items: str, modifiers: str = ""
    ) -> Iterator[Response | int]:
        """:func:`stream_fetch`, through :meth:`_pipelined`."""
        fetch = partial(stream_fetch, uid_sets=uid_sets, items=items, modifiers=modifiers)
        return self._pipelined(fetch)

    def _stream_commands(self, commands: Iterable[bytes], kind: bytes) -> Iterator[Response | int]:
        """:func:`stream_commands` (a few dozen in flight), through :meth:`_pipelined`."""
        return self._pipelined(partial(stream_commands, commands=commands, kind=kind, window=64))

    def _pipelined(self, start: Callable[[Connection, Reader], Iterator[R]]) -> Iterator[R]:
        """A pipelined stream with errors mapped; the connection is marked broken until
        the stream has been read to its end (a caller that stops early leaves it so)."""
        self._check_usable()
        imap = self.client._imap
        reader = cast("Reader", imap.file)  # a BufferedReader, typed loosely by imaplib
        stream = start(imap, reader)
        with self._errors():  # once around the whole stream, not once per response
            self._broken = True
            try:
                yield from stream
            except FetchRefused:
                self._broken = False  # refused, but every response was read: still in step
                raise
        self._broken = False

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
