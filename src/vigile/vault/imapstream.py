"""Pipelined, streaming ``UID FETCH`` on an imaplib connection.

Written by hand because neither imaplib nor IMAPClient can do what a full backup needs:
both send one command and then collect *every* response to it in memory before returning
(so a folder is either fetched in small batches, each a full round trip during which the
server idles, or held whole in memory), and IMAPClient's pure-Python lexer was the largest
single cost of a backup (docs/benchmarks.md). Here the commands are pipelined (a few in
flight, RFC 3501 section 5.5), and responses are handed over one by one as they arrive,
read with imaplib's own ``send``, ``readline`` and ``read``; only the framing of a FETCH
response (a line, a ``{n}`` literal, the rest of the line) is parsed here, and the items in
it by :func:`body_of` and the patterns in ``imap.py``.

Errors: a ``NO``/``BAD`` completion raises :class:`FetchRefused` (permanent) once the
other commands in flight have completed; a closed or timed-out connection raises
``OSError``/``EOFError`` to the caller, which treats the connection as lost.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

#: Commands in flight at once: enough that the server always has the next one queued.
WINDOW = 3
_TAGS = (f"VGF{n}" for n in itertools.count(1))
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")
_UID = re.compile(rb"[( ]UID (\d+)")


class Connection(Protocol):
    """What imaplib's ``IMAP4`` offers for raw exchanges (documented there)."""

    def send(self, data: bytes) -> None: ...

    def readline(self) -> bytes: ...

    def read(self, size: int) -> bytes: ...


class FetchRefused(Exception):
    """The server answered a FETCH with NO or BAD."""


@dataclass(frozen=True)
class Response:
    """One untagged FETCH response: its text (literals cut out) and its literals, in order."""

    text: bytes
    parts: tuple[bytes, ...]
    literals: tuple[bytes, ...]

    @property
    def uid(self) -> int | None:
        found = _UID.search(self.text)
        return int(found.group(1)) if found else None


def read_response(conn: Connection) -> Response:
    """Read one whole server response, literals included.

    >>> import io
    >>> r = read_response(io.BytesIO(b"* 1 FETCH (UID 7 BODY[] {3}\\r\\nabc)\\r\\n"))
    >>> r.uid, r.literals, body_of(r)
    (7, (b'abc',), b'abc')
    """
    line = conn.readline()
    parts, literals = [], []
    while True:
        if not line.endswith(b"\n"):
            raise EOFError("connection closed in the middle of a response")
        found = _LITERAL.search(line) if line.endswith(b"}\r\n") else None
        if found is None:
            parts.append(line)
            break
        parts.append(line[: found.start()])
        size = int(found.group(1))
        literal = conn.read(size)
        if len(literal) != size:
            raise EOFError("connection closed in the middle of a literal")
        literals.append(literal)
        line = conn.readline()
    return Response(b"".join(parts), tuple(parts), tuple(literals))


def body_of(response: Response) -> bytes | None:
    """The ``BODY[]`` literal of a FETCH response, or ``None`` if it carries none."""
    for before, literal in zip(response.parts, response.literals, strict=False):
        if before.endswith(b"BODY[] "):
            return literal
    return None


def stream_fetch(
    conn: Connection, uid_sets: Iterable[str], items: str, modifiers: str = ""
) -> Iterator[Response | None]:
    """``UID FETCH <set> <items> <modifiers>`` for every set, pipelined; yields responses.

    FETCH responses are yielded in the order they arrive, unsolicited ones (a flag change
    made by another client) included: the caller picks what it asked for. ``None`` is
    yielded each time a command completes, in the order the sets were given. Other
    untagged responses (``EXISTS``, ``EXPUNGE``…) are skipped. If the caller stops early,
    the connection is left mid-stream and must be dropped.
    """
    pending = iter(uid_sets)
    in_flight: deque[bytes] = deque()
    suffix = f" {items}{' ' + modifiers if modifiers else ''}\r\n"

    def send_next() -> None:
        uid_set = next(pending, None)
        if uid_set is not None:
            tag = next(_TAGS).encode()
            conn.send(tag + b" UID FETCH " + uid_set.encode() + suffix.encode())
            in_flight.append(tag)

    for _ in range(WINDOW):
        send_next()
    refused = None
    while in_flight:
        response = read_response(conn)
        text = response.text
        if text.startswith(b"* "):
            if refused is None and b" FETCH " in text[:32]:
                yield response
            continue
        tag, _, rest = text.partition(b" ")
        if tag != in_flight[0]:
            raise EOFError(f"out of step with the server at {text[:80]!r}")
        in_flight.popleft()
        if not rest.startswith(b"OK"):
            refused = refused or rest.decode(errors="replace").strip()
        elif refused is None:
            yield None
            send_next()
    if refused is not None:
        raise FetchRefused(refused)
