"""A message's sender, subject and Message-ID: taken raw at backup time, decoded for display.

A backup keeps these three header values in the folder tree beside each new message, so
that listings can show and search them without opening the sealed messages.
:func:`header_fields` takes them from the raw header block as they are written (RFC 2047
encoded words left encoded, folded lines unfolded, cut at :data:`VALUE_LIMIT` bytes);
:func:`display` decodes one for a person to read, with the standard library's
``email.header``. Neither ever raises: a malformed or missing header gives ``""`` or the
value as it was written.

Written with ``bytes.find`` rather than the ``email`` parser or a regular expression: it
runs on the thread that reads the network, once per message of a full backup, and the
parser costs about 30 µs a message and a regular expression over the header block 2.5 µs
(``re`` tries every position), against about 2 µs here (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

#: The longest value kept, in bytes: a sender or subject longer than a screen line is
#: still told apart by its start, and a tree stays small whatever the mail.
VALUE_LIMIT = 400
#: How far into a message its header block is looked for.
HEADER_SCAN = 64 * 1024
#: The fields kept, as :func:`header_fields` returns them.
FIELDS = (b"From", b"Subject", b"Message-ID")
_NEEDLES = tuple(b"\n" + name + b":" for name in FIELDS)
_WSP = (0x20, 0x09)
#: First bytes of a message that may begin with one of the fields, which the quick
#: path (looking for each after a line end) would miss.
_LEADS = frozenset(b"FfSsMm")


def header_fields(raw: bytes) -> tuple[str, str, str]:
    """The raw ``From``, ``Subject`` and ``Message-ID`` values of a message ("" if absent).

    Of a field given twice, the first is taken; one spelt as usual (``Message-ID``) comes
    before one in another case (``message-id``), which is the first only if it is alone.

    >>> header_fields(b"Subject: =?utf-8?q?=C3=A9t=C3=A9?=\\r\\n very long\\r\\n\\r\\nbody")
    ('', '=?utf-8?q?=C3=A9t=C3=A9?= very long', '')
    >>> header_fields(b"no header block at all")
    ('', '', '')
    """
    end = raw.find(b"\r\n\r\n", 0, HEADER_SCAN)
    if end < 0 or raw[0] in _LEADS:  # bare LF line ends, no body, or a field may be first
        return _fields_of_block(raw)
    out = []
    # The quick path, one loop with no call per field (this runs once per message): each
    # field spelt as usual, not on the first line, and on one line.
    for needle in _NEEDLES:
        at = raw.find(needle, 0, end)
        if at < 0:
            return _fields_of_block(raw)
        at += len(needle)
        stop = raw.find(b"\r\n", at)  # found: the block ends with one
        if raw[stop + 2] in _WSP:
            out.append(_value(raw, at))
        else:
            out.append(raw[at:stop].strip()[:VALUE_LIMIT].decode("utf-8", "replace"))
    return out[0], out[1], out[2]


def _fields_of_block(raw: bytes) -> tuple[str, str, str]:
    """:func:`header_fields` for any line ends and spelling (the slower, general path)."""
    end = raw.find(b"\r\n\r\n", 0, HEADER_SCAN)
    if end < 0:
        end = raw.find(b"\n\n", 0, HEADER_SCAN)
    block = b"\n" + raw[: end if end >= 0 else HEADER_SCAN] + b"\n"
    lower = block.lower()
    out = []
    for needle in _NEEDLES:
        at = lower.find(needle.lower())
        out.append("" if at < 0 else _value(block, at + len(needle)))
    return out[0], out[1], out[2]


def _value(block: bytes, at: int) -> str:
    """The value starting at ``at``, its folded lines unfolded (RFC 5322 section 2.2.3)."""
    stop = block.find(b"\n", at)
    while 0 <= stop < len(block) - 1 and block[stop + 1] in _WSP:
        stop = block.find(b"\n", stop + 1)
    value = block[at : stop if stop >= 0 else len(block)]
    value = value.replace(b"\r\n", b"").replace(b"\n", b"").strip()
    return value[:VALUE_LIMIT].decode("utf-8", "replace")


@lru_cache(maxsize=4096)
def display(value: str) -> str:
    """A raw header value as a person reads it: RFC 2047 encoded words decoded, runs of
    white space (a tab left by unfolding) one space.

    >>> display("=?utf-8?q?Jos=C3=A9_M=C3=BCller?= <jose@example.org>")
    'José Müller <jose@example.org>'
    >>> display("=?bogus-charset?q?x?=\tplain")
    '=?bogus-charset?q?x?= plain'
    """
    if "=?" in value:
        from email.header import decode_header, make_header  # only listings need it

        # email.header raises what it meets on malformed input (HeaderParseError,
        # binascii.Error, LookupError for an unknown charset, UnicodeError, ...): any of
        # them leaves the value as written, which is what a listing shows.
        with contextlib.suppress(Exception):
            value = str(make_header(decode_header(value)))
    return " ".join(value.split())
