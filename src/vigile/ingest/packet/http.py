"""HTTP/1.x request and response heads (RFC 9112), from the first segment of each.

Only the head is read: request line, Host, User-Agent and Referer of requests, the
status code of responses. Hand-written because the few fields needed sit in the
first bytes, and h11/httptools want a whole conversation rather than one segment.
"""

from __future__ import annotations

from dataclasses import dataclass

METHODS = (
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"TRACE",
    b"PROPFIND", b"MKCOL", b"MOVE", b"COPY", b"LOCK", b"UNLOCK", b"PROPPATCH", b"SEARCH",
)  # fmt: skip
#: First four bytes of a request head, for the vectorised pre-filter.
PREFIXES = tuple(sorted({(m + b" ")[:4] for m in METHODS}))
MAX_HEAD = 16_384


@dataclass
class HttpRequest:
    """The request head fields the ``http`` table keeps."""

    method: str
    uri: str
    host: str | None
    user_agent: str | None
    referrer: str | None


def parse_request(data: bytes) -> HttpRequest | None:
    """The request head at the start of ``data``, or None if there is none.

    >>> r = parse_request(b"GET /a HTTP/1.1\\r\\nHost: Example.org:8080\\r\\nUser-Agent: x\\r\\n")
    >>> r.method, r.uri, r.host, r.user_agent
    ('GET', '/a', 'Example.org:8080', 'x')
    """
    head = data[:MAX_HEAD].split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] not in METHODS or not parts[2].startswith(b"HTTP/"):
        return None
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() not in fields:
            fields[name.strip().lower()] = value.strip()
    host = _text(fields.get(b"host"))
    return HttpRequest(
        parts[0].decode("ascii"),
        parts[1].decode("utf-8", "backslashreplace"),
        host or None,
        _text(fields.get(b"user-agent")),
        _text(fields.get(b"referer")),
    )


def parse_status(data: bytes) -> int | None:
    """The status code of a response head at the start of ``data``.

    >>> parse_status(b"HTTP/1.1 404 Not Found\\r\\n"), parse_status(b"SSH-2.0")
    (404, None)
    """
    if not data.startswith(b"HTTP/1.") or len(data) < 12 or data[8:9] != b" ":
        return None
    code = data[9:12]
    return int(code) if code.isdigit() else None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "backslashreplace")
