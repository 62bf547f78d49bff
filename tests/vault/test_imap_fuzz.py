"""Fuzz tests of the IMAP response parsing against a hostile or broken server.

A damaged transcript of a full download (pipelined ``UID FETCH``) is read by
:func:`stream_commands` and its items by :func:`fetched_of`: the outcome is messages, or
one of the documented errors (``EOFError`` for a connection that ends or is out of step,
:class:`LineTooLong`, :class:`FetchRefused`, :class:`BadResponse`), which ``ImapSource``
turns into one-line source errors; never another exception, never a hang.
"""

from __future__ import annotations

import io

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.fuzzing import mutated, within

from vigile.vault.imap import FULL_LINE, _meta_of, fetched_of, parse_internaldate
from vigile.vault.imapstream import (
    BadResponse,
    FetchRefused,
    LineTooLong,
    Response,
    stream_commands,
)

TRANSCRIPT = (
    b'* 1 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 3 INTERNALDATE "01-Feb-2024 10:00:00 +0000"'
    b" BODY[] {3}\r\nabc)\r\n"
    b'* 2 FETCH (UID 8 FLAGS () INTERNALDATE "01-Feb-2024 10:00:00 +0000" RFC822.SIZE 5'
    b" BODY[] {5}\r\nhello)\r\n"
    b"* 3 EXISTS\r\n"
    b"<T0> OK Fetch completed.\r\n"
    b'* 3 FETCH (UID 9 FLAGS (\\Seen \\Answered) RFC822.SIZE 2 INTERNALDATE " 3-Jan-2024'
    b' 10:05:09 +0100" BODY[] {2}\r\nhi)\r\n'
    b"<T1> OK Fetch completed.\r\n"
)
EXPECTED_ERRORS = (EOFError, LineTooLong, FetchRefused, BadResponse)


class _Server:
    """The two ends of a connection: commands sent are kept, answers come from
    ``transcript`` with the tags sent put in place of ``<T0>``, ``<T1>``."""

    def __init__(self, transcript: bytes) -> None:
        self.transcript, self.tags, self._answers = transcript, [], None

    def send(self, data: bytes) -> None:
        self.tags.append(data.split(b" ", 1)[0])

    def _stream(self) -> io.BytesIO:
        if self._answers is None:
            text = self.transcript
            for i, tag in enumerate(self.tags):
                text = text.replace(b"<T%d>" % i, tag)
            self._answers = io.BytesIO(text)
        return self._answers

    def readline(self, size: int = -1, /) -> bytes:
        return self._stream().readline(size)

    def read(self, size: int = -1, /) -> bytes:
        return self._stream().read(size)


def _download(transcript: bytes) -> list[object]:
    server = _Server(transcript)
    commands = [b"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])"] * 2
    out = []
    for item in stream_commands(server, server, commands, b" FETCH ", 3, FULL_LINE):
        out.append(fetched_of(item))
        if isinstance(item, Response):
            _meta_of(item)
    return out


def test_the_transcript_gives_its_three_messages() -> None:
    items = _download(TRANSCRIPT)
    messages = [m for m in items if m is not None]
    assert [(m.meta.uid, m.raw) for m in messages] == [(7, b"abc"), (8, b"hello"), (9, b"hi")]


@settings(max_examples=300)
@given(mutated(TRANSCRIPT))
@example(TRANSCRIPT.replace(b"01-Feb-2024 10:00:00 +0000", b"01-Feb-2024 10:00:00 +9999", 1))
@example(TRANSCRIPT.replace(b'"01-Feb-2024 10:00:00 +0000" RFC822', b'"yesterday" RFC822'))
@example(TRANSCRIPT.replace(b"FLAGS ()", b"FLAGS (\x80)"))  # was a UnicodeDecodeError
@example(TRANSCRIPT.replace(b"<T1> OK Fetch completed.", b"<T1> "))  # was FetchRefused("")
def test_damaged_responses_give_messages_or_a_documented_error(transcript: bytes) -> None:
    try:
        with within(10):
            _download(transcript)
    except EXPECTED_ERRORS as e:
        assert str(e)


@settings(max_examples=300)
@given(st.binary(max_size=40))
@example(b"99-Jan-2024 10:00:00 +0000")
@example(b"01-Foo-2024 10:00:00 +0000")
def test_any_internaldate_is_a_date_or_bad_response(value: bytes) -> None:
    """Regression: a date that was no date raised ValueError or KeyError, which reached
    ``vigile vault backup`` as a traceback."""
    try:
        parse_internaldate(value)
    except BadResponse as e:
        assert "is not an IMAP date-time" in str(e)
