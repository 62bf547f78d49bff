"""Pipelined, streaming ``UID FETCH`` (and ``STATUS``) on an imaplib connection.

Written by hand because neither imaplib nor IMAPClient can do what a full backup needs:
both send one command and then collect *every* response to it in memory before returning
(so a folder is either fetched in small batches, each a full round trip during which the
server idles, or held whole in memory), and IMAPClient's pure-Python lexer was the largest
single cost of a backup (docs/benchmarks.md). Here the commands are pipelined (a few in
flight, RFC 3501 section 5.5), and responses are handed over one by one as they arrive,
sent with imaplib's ``send`` and read from imaplib's buffered reader of the socket
directly (its ``readline``/``read`` wrappers cost a Python call each per line); only the
framing of a FETCH response (a line, a ``{n}`` literal, the rest of the line) is parsed
here, and the items in it by :func:`body_of` and the patterns in ``imap.py``. A caller may
also give a pattern for the response it expects most (a full download's FETCH responses,
items in the server's usual order): a response whose first line it matches, and whose
literal ends it, is handed over as a :class:`Quick` (the pattern's groups and the literal)
without being framed item by item; any other response takes the general path.

Errors: a ``NO``/``BAD`` completion raises :class:`FetchRefused` (permanent) once the
other commands in flight have completed; a line longer than imaplib accepts raises
:class:`LineTooLong` (permanent too), an item that breaks the grammar
:class:`BadResponse` (permanent, raised by the item parsers in ``imap.py``); a closed or
timed-out connection raises ``OSError``/``EOFError`` to the caller, which treats the
connection as lost.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol, overload

#: Commands in flight at once: enough that the server always has the next one queued.
WINDOW = 3
#: The longest response line accepted, as imaplib's ``_MAXLINE``: a bound on memory.
MAX_LINE = 1_000_000
#: The largest literal (message) accepted: 1 GiB, beyond any mail server's message size
#: limit; a bound on memory against a broken or hostile server announcing ``{10000000000}``.
MAX_LITERAL = 1 << 30
_TAG_NUMBERS = itertools.count(1)  # next() on a count is atomic: tags stay unique
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")
_UID = re.compile(rb"[( ]UID (\d+)")


class Connection(Protocol):
    """What imaplib's ``IMAP4`` offers to send a raw command (documented there)."""

    def send(self, data: bytes) -> None: ...


class Reader(Protocol):
    """A buffered binary reader (``io.BufferedReader``; imaplib's ``IMAP4.file``)."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class FetchRefused(Exception):
    """The server answered a pipelined command (a FETCH, a STATUS) with NO or BAD."""


class BadResponse(Exception):
    """A response item that does not follow the protocol's grammar (an ``INTERNALDATE``
    that is no date): permanent, as the server will send it again."""


class LineTooLong(Exception):
    """A response line longer than :data:`MAX_LINE`, or a literal announced larger than
    :data:`MAX_LITERAL` (the connection is left mid-response)."""


class CommandQueue:
    """Commands for :func:`stream_commands` that may be added to while the stream runs.

    An iterator that can run dry and then give more: ``next`` gives the oldest command not
    yet taken, or stops while there is none; a command added later is sent when a command
    in flight completes. Its position (what :func:`stream_commands` yields when it
    completes) is what :meth:`add` returns.
    """

    def __init__(self, commands: Iterable[bytes] = ()) -> None:
        self._waiting: deque[bytes] = deque()
        self._added = 0
        for command in commands:
            self.add(command)

    def add(self, command: bytes) -> int:
        self._waiting.append(command)
        self._added += 1
        return self._added - 1

    def __iter__(self) -> CommandQueue:
        return self

    def __next__(self) -> bytes:
        if not self._waiting:
            raise StopIteration
        return self._waiting.popleft()


class Quick(NamedTuple):
    """A response matched whole by the caller's pattern (see :func:`stream_commands`)."""

    groups: tuple[bytes, ...]  # the pattern's groups, the literal's size (the last) left out
    literal: bytes


class Response(NamedTuple):
    """One server response: its text cut where literals were, and the literals."""

    parts: list[bytes]
    literals: list[bytes]

    @property
    def text(self) -> bytes:
        return b"".join(self.parts)

    @property
    def uid(self) -> int | None:
        found = _UID.search(self.parts[0])
        if found is None and len(self.parts) > 1:
            found = _UID.search(self.text)
        return int(found.group(1)) if found else None


def _literal_size(digits: bytes) -> int:
    """The size of a literal announced as ``{digits}``, if it is one this reader takes."""
    if len(digits) > 10 or (size := int(digits)) > MAX_LITERAL:
        shown = digits[:12].decode() + ("…" if len(digits) > 12 else "")
        raise LineTooLong(f"a literal of {shown} bytes is larger than the {MAX_LITERAL} accepted")
    return size


def _whole(line: bytes) -> bytes:
    """``line`` if it is a whole line, else the reason it is not."""
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise LineTooLong(f"response line longer than {MAX_LINE} bytes")
        raise EOFError("connection closed in the middle of a response")
    return line


def read_response(reader: Reader) -> Response:
    """Read one whole server response, literals included.

    >>> import io
    >>> r = read_response(io.BytesIO(b"* 1 FETCH (UID 7 BODY[] {3}\\r\\nabc)\\r\\n"))
    >>> r.uid, r.literals, body_of(r)
    (7, [b'abc'], b'abc')
    """
    return _read_rest(reader, reader.readline(MAX_LINE + 1), [], [])


def _read_rest(reader: Reader, line: bytes, parts: list[bytes], literals: list[bytes]) -> Response:
    """The rest of a response from ``line`` on, after the ``parts`` and ``literals`` read."""
    while line.endswith(b"}\r\n") and (found := _LITERAL.search(line)) is not None:
        parts.append(line[: found.start()])
        size = _literal_size(found.group(1))
        literal = reader.read(size)
        if len(literal) != size:
            raise EOFError("connection closed in the middle of a literal")
        literals.append(literal)
        line = reader.readline(MAX_LINE + 1)
    parts.append(_whole(line))
    return Response(parts, literals)


def body_of(response: Response) -> bytes | None:
    """The ``BODY[]`` literal of a FETCH response, or ``None`` if it carries none."""
    if response.literals and response.parts[0].endswith(b"BODY[] "):
        return response.literals[0]
    for before, literal in zip(response.parts, response.literals, strict=False):
        if before.endswith(b"BODY[] "):
            return literal
    return None


def stream_fetch(
    conn: Connection, reader: Reader, uid_sets: Iterable[str], items: str, modifiers: str = ""
) -> Iterator[Response | int]:
    """``UID FETCH <set> <items> <modifiers>`` for every set, pipelined; yields responses.

    FETCH responses are yielded as they arrive, unsolicited ones (a flag change made by
    another client) included: the caller picks what it asked for. When a command
    completes, the position of its set (0 for the first) is yielded. The server may run
    the commands concurrently (RFC 3501 section 5.5; Dovecot does), so the responses of
    one set can arrive before the previous set has completed, and completions can come in
    any order. Other untagged responses (``EXISTS``, ``EXPUNGE``…) are skipped. If the
    caller stops early, the connection is left mid-stream and must be dropped.
    """
    suffix = f" {items}{' ' + modifiers if modifiers else ''}".encode()
    commands = (b"UID FETCH " + uid_set.encode() + suffix for uid_set in uid_sets)
    yield from stream_commands(conn, reader, commands, b" FETCH ", WINDOW)


@overload
def stream_commands(
    conn: Connection, reader: Reader, commands: Iterable[bytes], kind: bytes, window: int
) -> Iterator[Response | int]: ...


@overload
def stream_commands(
    conn: Connection,
    reader: Reader,
    commands: Iterable[bytes],
    kind: bytes,
    window: int,
    quick: re.Pattern[bytes],
) -> Iterator[Quick | Response | int]: ...


def stream_commands(
    conn: Connection,
    reader: Reader,
    commands: Iterable[bytes],
    kind: bytes,
    window: int,
    quick: re.Pattern[bytes] | None = None,
) -> Iterator[Quick | Response | int]:
    """Send ``commands`` (without tag or line end) pipelined, at most ``window`` in flight.

    Yields the untagged responses whose first 32 bytes hold ``kind`` (``b" FETCH "``,
    ``b" STATUS "``) as they arrive, and the position of each command (0 for the first)
    when it completes, in whatever order the server completes them. A ``NO``/``BAD``
    completion stops the sending and raises :class:`FetchRefused` once the commands in
    flight have completed (their responses are read, not yielded).

    ``quick``, if given, must match a whole response line that ends in a literal's
    ``{n}\r\n``, its last group being ``n``; it must not match a tagged line nor a
    response of another kind. A response whose first line it matches and whose literal is
    followed by ``)\r\n`` alone is yielded as a :class:`Quick`; every other one as a
    :class:`Response`, framed exactly as :func:`read_response` frames it. Only the caller
    that gives ``quick`` ever gets a :class:`Quick`.
    """
    pending = iter(commands)
    sent = itertools.count()  # a command's position: the order it was sent in
    in_flight: dict[bytes, int] = {}

    def send_next() -> None:
        command = next(pending, None)
        if command is not None:
            tag = f"VGF{next(_TAG_NUMBERS)}".encode()
            conn.send(tag + b" " + command + b"\r\n")
            in_flight[tag] = next(sent)

    for _ in range(window):
        send_next()
    refused = None
    readline, read = reader.readline, reader.read
    match, last = (quick.match, quick.groups) if quick is not None else (None, 0)
    while in_flight:
        line = readline(MAX_LINE + 1)
        if match is not None and (found := match(line)) is not None:
            # The quick path: the whole response is one line, one literal and ")".
            size = _literal_size(found.group(last))
            literal, closing = read(size), readline(MAX_LINE + 1)
            if len(literal) != size:
                raise EOFError("connection closed in the middle of a literal")
            if closing == b")\r\n":
                if refused is None:
                    yield Quick(found.groups()[:-1], literal)
                continue
            head = line[: found.start(last) - 1]  # up to the literal's "{", as _read_rest cuts
            response = _read_rest(reader, closing, [head], [literal])
        else:
            response = _read_rest(reader, line, [], [])
        head = response.parts[0]
        if head.startswith(b"* "):
            if refused is None and kind in head[:32]:
                yield response
            continue
        tag, _, rest = head.partition(b" ")
        position = in_flight.pop(tag, None)
        if position is None:
            raise EOFError(f"out of step with the server at {head[:80]!r}")
        if not rest.startswith(b"OK"):
            said = rest.decode(errors="replace").strip()
            refused = refused or said or "a completion without OK, NO or BAD"
        elif refused is None:
            yield position
            send_next()
    if refused is not None:
        raise FetchRefused(refused)
