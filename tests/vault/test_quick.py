"""The quick path of a full download's FETCH responses (``imapstream.stream_commands`` with
``imap.FULL_LINE``): property tests that it gives exactly what the general framing gives,
whatever the item order, the bytes of the messages and where the reads are cut.

The server side is a scripted byte stream: :class:`ScriptedServer` answers each command
sent with the responses given and a tagged ``OK``. The real Dovecot runs the same path in
``test_stream.py`` and ``test_roundtrip.py``.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.vault.imap import FULL_ITEMS, FULL_LINE, fetched_of
from vigile.vault.imapstream import (
    MAX_LINE,
    MAX_LITERAL,
    LineTooLong,
    Quick,
    Response,
    stream_commands,
)
from vigile.vault.source import FetchedMessage, MessageMeta


class ChunkedStream(io.RawIOBase):
    """The server's bytes, arriving cut at the given offsets as a socket may hand them over."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server, self.pos, self.cuts = server, 0, sorted(server.cuts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.server.wire  # what the server has sent so far
        end = next((c for c in self.cuts if c > self.pos), len(data))
        chunk = data[self.pos : min(end, self.pos + len(buffer))]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


class ScriptedServer:
    """Answers each command with ``responses`` and a tagged OK (a test double of a server's
    byte stream; nothing of the IMAP client is replaced)."""

    def __init__(self, responses: bytes, cuts: set[int] | None = None) -> None:
        self.responses, self.cuts, self.wire = responses, cuts or set(), b""

    def send(self, data: bytes) -> None:
        tag = data.split(b" ", 1)[0]
        self.wire += self.responses + tag + b" OK Fetch completed.\r\n"

    def reader(self) -> io.BufferedReader:
        return io.BufferedReader(ChunkedStream(self), buffer_size=64)


def imap_date(when: datetime) -> bytes:
    offset = int((when.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "-" if offset < 0 else "+"
    return (
        when.strftime("%d-%b-%Y %H:%M:%S ") + f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    ).encode()


_FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "$Label1", "\\Recent")
# Bytes that look like framing inside a message: a literal's {n}, a closing ")", CRLFs.
_BODY = st.lists(
    st.sampled_from([b"a", b"\r\n", b")", b"{3}\r\n", b"*", b" OK ", b"\x00", b"\xff"]),
    max_size=12,
).map(b"".join)
_MESSAGE = st.tuples(
    st.integers(1, 10**9),
    st.lists(st.sampled_from(_FLAGS), unique=True, max_size=3),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(-12 * 60, 14 * 60),
    _BODY,
    st.sampled_from(["server order", "other order", "item after body"]),
)


def response_of(seq: int, message: tuple[int, list[str], datetime, int, bytes, str]) -> bytes:
    uid, flags, when, _, body, layout = message
    flag_text = " ".join(flags).encode()
    date = imap_date(when)
    size = len(body)
    literal = b"BODY[] {%d}\r\n%s" % (size, body)
    if layout == "server order":
        items = b'UID %d FLAGS (%s) RFC822.SIZE %d INTERNALDATE "%s" %s)' % (
            uid,
            flag_text,
            size,
            date,
            literal,
        )
    elif layout == "other order":
        items = b'FLAGS (%s) UID %d INTERNALDATE "%s" RFC822.SIZE %d %s)' % (
            flag_text,
            uid,
            date,
            size,
            literal,
        )
    else:
        items = b'UID %d FLAGS (%s) RFC822.SIZE %d INTERNALDATE "%s" %s MODSEQ (5))' % (
            uid,
            flag_text,
            size,
            date,
            literal,
        )
    return b"* %d FETCH (%s\r\n" % (seq, items)


def expected_of(message: tuple[int, list[str], datetime, int, bytes, str]) -> FetchedMessage:
    uid, flags, when, _, body, _ = message
    kept = tuple(sorted(f for f in flags if f != "\\Recent"))
    return FetchedMessage(MessageMeta(uid, len(body), when, kept), body)


def fetch(server: ScriptedServer, quick: bool) -> list[Quick | Response | int]:
    command = b"UID FETCH 1:* " + FULL_ITEMS.encode()
    if quick:
        return list(stream_commands(server, server.reader(), [command], b" FETCH ", 1, FULL_LINE))
    return list(stream_commands(server, server.reader(), [command], b" FETCH ", 1))


def wire_of(messages: list[tuple[int, list[str], datetime, int, bytes, str]]) -> bytes:
    # Responses a full download may also carry: a new message's count, a flag change.
    extra = b"* 3 EXISTS\r\n* 2 FETCH (UID 9 FLAGS (\\Seen))\r\n"
    return extra + b"".join(response_of(n, m) for n, m in enumerate(messages, start=1))


def with_zones(
    messages: list[tuple[int, list[str], datetime, int, bytes, str]],
) -> list[tuple[int, list[str], datetime, int, bytes, str]]:
    out = []
    for uid, flags, when, zone, body, layout in messages:
        zoned = when.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=zone)))
        out.append((uid, flags, zoned, zone, body, layout))
    return out


@settings(max_examples=150)
@given(st.lists(_MESSAGE, max_size=5), st.sets(st.integers(0, 2000), max_size=30))
def test_quick_path_gives_what_the_general_framing_gives(
    messages: list[tuple[int, list[str], datetime, int, bytes, str]], cuts: set[int]
) -> None:
    messages = with_zones(messages)
    wire = wire_of(messages)
    quick = fetch(ScriptedServer(wire, cuts), quick=True)
    general = fetch(ScriptedServer(wire, cuts), quick=False)
    assert [fetched_of(i) for i in quick] == [fetched_of(i) for i in general]
    got = [m for m in map(fetched_of, quick) if m is not None]
    assert got == [expected_of(m) for m in messages]
    assert quick[-1] == general[-1] == 0  # the command's completion, last
    # The quick path took exactly the responses laid out as the server lays them out (the
    # flag change before them is yielded too, the EXISTS is not).
    quick_layouts = [type(i) is Quick for i in quick if not isinstance(i, int)][1:]
    assert quick_layouts == [m[5] == "server order" for m in messages]


def test_every_cut_of_the_reads_gives_the_same_messages() -> None:
    when = datetime(2024, 1, 3, 10, 5, 9, tzinfo=timezone(timedelta(hours=1)))
    messages = [
        (7, ["\\Seen"], when, 60, b"Subject: x\r\n\r\n{5}\r\n)\r\n", "server order"),
        (8, [], when, 60, b"", "server order"),
        (9, ["$Label1"], when, 60, b"body)\r\n", "item after body"),
        (10, ["\\Flagged", "\\Recent"], when, 60, b"x", "other order"),
    ]
    wire = wire_of(messages)
    reference = [expected_of(m) for m in messages]
    for cut in range(len(wire) + len(b"VGF1 OK Fetch completed.\r\n")):
        for quick in (True, False):
            items = fetch(ScriptedServer(wire, {cut}), quick)
            assert [m for m in map(fetched_of, items) if m is not None] == reference, cut


def test_quick_path_keeps_the_line_limit_and_notices_a_cut_literal() -> None:
    head = b'* 1 FETCH (UID 7 FLAGS () RFC822.SIZE 3 INTERNALDATE "01-Feb-2024 10:00:00 +0000" '
    assert FULL_LINE.match(head + b"BODY[] {3}\r\n")
    overlong_rest = head + b"BODY[] {3}\r\nabc" + b"x" * MAX_LINE + b")\r\n"
    with pytest.raises(LineTooLong):
        fetch(ScriptedServer(overlong_rest), quick=True)
    overlong_head = b"* 1 FETCH (UID 7 " + b"x" * MAX_LINE + b" BODY[] {3}\r\nabc)\r\n"
    with pytest.raises(LineTooLong):
        fetch(ScriptedServer(overlong_head), quick=True)

    huge = head + b"BODY[] {" + str(MAX_LITERAL + 1).encode() + b"}\r\nabc)\r\n"
    with pytest.raises(LineTooLong, match="literal of 1073741825 bytes"):
        fetch(ScriptedServer(huge), quick=True)

    class ClosedServer(ScriptedServer):
        def send(self, data: bytes) -> None:
            self.wire = head + b"BODY[] {30}\r\nonly ten b"

    with pytest.raises(EOFError, match="middle of a literal"):
        fetch(ClosedServer(b""), quick=True)


def test_the_quick_pattern_takes_no_other_line() -> None:
    for line in (
        b"VGF1 OK Fetch completed.\r\n",
        b"* 1 FETCH (UID 7 FLAGS (\\Seen))\r\n",
        b'* STATUS "x {3}" (MESSAGES 1)\r\n',
        b'* 1 FETCH (UID 7 FLAGS () RFC822.SIZE 3 INTERNALDATE "x" BODY[] {3}\r\n trailing',
    ):
        assert FULL_LINE.match(line) is None, line
    assert re.compile(FULL_LINE.pattern).groups == 5
