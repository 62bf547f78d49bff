"""CVE-2021-26855 and -27065 in the Exchange HttpProxy logs.

Microsoft's Test-ProxyLogon.ps1 (Get-Cve26855) flags rows whose ``AnchorMailbox`` is
like ``ServerInfo~*/*``, except ``ServerInfo~*/autodiscover*`` and
``ServerInfo~localhost*/*`` (the server's own traffic); the request forgery sets
this anchor to reach the back end. Rows with no authenticated user are raised, as
the forgery is pre-authentication. Get-Cve27065 flags ECP rows whose anchor is like
``ServerInfo~*/*Reset*VirtualDirectory#`` with status 200: the "reset" that makes
Exchange write the poisoned virtual directory settings to a file.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import ClassVar

from vigile.detect import Finding
from vigile.exchange import LogBlock, LogRecord
from vigile.exchange.grouping import Grouper
from vigile.exchange.prefilter import rows_holding


def ssrf_anchor(anchor: str) -> bool:
    """Test-ProxyLogon's CVE-2021-26855 anchor rule (PowerShell ``-like``, no case).

    >>> ssrf_anchor("ServerInfo~a]@mx01:444/ecp/proxyLogon.ecp#"), ssrf_anchor("SMTP:a@b.c")
    (True, False)
    >>> ssrf_anchor("ServerInfo~mx01/autodiscover/autodiscover.xml")
    False
    """
    low = anchor.lower()
    return (
        fnmatchcase(low, "serverinfo~*/*")
        and not fnmatchcase(low, "serverinfo~*/autodiscover*")
        and not fnmatchcase(low, "serverinfo~localhost*/*")
    )


def reset_vdir_anchor(anchor: str, status: str) -> bool:
    """Test-ProxyLogon's CVE-2021-27065 HttpProxy rule.

    >>> reset_vdir_anchor("ServerInfo~a]@mx01:444/ecp/DDI/DDIService.svc/"
    ...     "SetObject?schema=ResetOABVirtualDirectory#", "200")
    True
    """
    return fnmatchcase(anchor.lower(), "serverinfo~*/*reset*virtualdirectory#") and status == "200"


def forged_anchor_rows(block: LogBlock) -> list[int]:
    """Rows of ``block`` whose ``AnchorMailbox`` holds a ``~``: every anchor that
    ``ServerInfo~*`` matches has one (no other character lowers to ``~``), and normal
    anchors (``SMTP:…``, ``PUID:…``) have none."""
    return rows_holding(block.rows.icolumn("AnchorMailbox"), (("~",),))


class ProxyLogonSsrfCheck:
    """HttpProxy rows routed by a forged ``ServerInfo~`` anchor (CVE-2021-26855)."""

    name: ClassVar[str] = "exchange-ssrf-httpproxy"
    kinds: ClassVar[tuple[str, ...]] = ("httpproxy",)
    summary: ClassVar[str] = "CVE-2021-26855: AnchorMailbox ServerInfo~*/* in HttpProxy logs"
    source: ClassVar[str] = "Microsoft Test-ProxyLogon.ps1 (Get-Cve26855)"

    def __init__(self) -> None:
        self.groups = Grouper(self.name)

    def feed(self, record: LogRecord) -> None:
        anchor = record.iget("AnchorMailbox")
        if not ssrf_anchor(anchor):
            return
        user = record.iget("AuthenticatedUser")
        pattern = "ssrf-anonymous" if not user else "ssrf-authenticated"
        self.groups.add(
            record.iget("ClientIpAddress"),
            pattern,
            0.85 if not user else 0.6,
            record,
            subject=record.iget("ServerHostName") or None,
            anchor=anchor,
            url=record.iget("UrlStem"),
            status=record.iget("HttpStatus"),
            user=user,
            user_agent=record.iget("UserAgent"),
        )

    def feed_block(self, block: LogBlock) -> None:
        """:meth:`feed` for the rows that may carry a forged anchor."""
        for i in forged_anchor_rows(block):
            self.feed(block.record(i))

    def finish(self) -> list[Finding]:
        return self.groups.findings(
            {
                "ssrf-anonymous": "HttpProxy routed them by a forged ServerInfo~ anchor with "
                "no authenticated user (CVE-2021-26855 server-side request forgery)",
                "ssrf-authenticated": "HttpProxy routed them by a ServerInfo~ anchor outside "
                "autodiscover and localhost (CVE-2021-26855 pattern, user authenticated)",
            }
        )


class ResetVirtualDirectoryCheck:
    """HttpProxy ECP rows resetting a virtual directory through a forged anchor."""

    name: ClassVar[str] = "exchange-reset-vdir-httpproxy"
    kinds: ClassVar[tuple[str, ...]] = ("httpproxy",)
    summary: ClassVar[str] = "CVE-2021-27065: ServerInfo~*/*Reset*VirtualDirectory# with 200"
    source: ClassVar[str] = "Microsoft Test-ProxyLogon.ps1 (Get-Cve27065)"

    def __init__(self) -> None:
        self.groups = Grouper(self.name)

    def feed(self, record: LogRecord) -> None:
        anchor = record.iget("AnchorMailbox")
        if not reset_vdir_anchor(anchor, record.iget("HttpStatus")):
            return
        self.groups.add(
            record.iget("ClientIpAddress"),
            "reset-vdir",
            0.95,
            record,
            subject=record.iget("ServerHostName") or None,
            anchor=anchor,
            url=record.iget("UrlStem"),
            user_agent=record.iget("UserAgent"),
        )

    def feed_block(self, block: LogBlock) -> None:
        """:meth:`feed` for the rows that may carry a forged anchor."""
        for i in forged_anchor_rows(block):
            self.feed(block.record(i))

    def finish(self) -> list[Finding]:
        return self.groups.findings(
            {
                "reset-vdir": "ECP reset a virtual directory (status 200) through a forged "
                "ServerInfo~ anchor, the step that writes a web shell (CVE-2021-27065)"
            }
        )
