"""CVE-2021-27065: a virtual directory URL set to markup or script (ECP server logs).

The arbitrary file write behind ProxyLogon stores a web shell in a virtual
directory's ``ExternalUrl`` (or ``InternalUrl``) through ECP, then "resets" the
directory so Exchange writes its settings, shell included, to a file of the
attacker's choosing. Microsoft's Test-ProxyLogon.ps1 looks for this in
``Logging/ECP/Server/*.log`` with the pattern
``Set-.+VirtualDirectory.+?(?=Url).+<\\w+.*>(.*?)<\\/\\w+>.+?(?=VirtualDirectory)``;
the same text appears in MSExchange Management events (see :mod:`.events`).
"""

from __future__ import annotations

import re
from typing import ClassVar

from vigile.detect import Finding
from vigile.exchange import LogRecord, make_finding

#: A cmdlet that changes a virtual directory (Set-/New-/Remove-…VirtualDirectory).
VDIR_CMDLET = re.compile(r"\b((?:Set|New|Remove)-\w*VirtualDirectory)\b", re.IGNORECASE)
#: A ``…Url`` parameter whose value holds an HTML/script element.
URL_WITH_MARKUP = re.compile(
    r"(\w*Url)\W{0,4}[^<]{0,400}?(<\s*\w+[^>]*>.*?<\s*/\s*\w+\s*>)", re.IGNORECASE | re.DOTALL
)
#: The ECP server log line pattern of Test-ProxyLogon.ps1 (Get-Cve27065).
TEST_PROXYLOGON_ECP = re.compile(
    r"Set-.+VirtualDirectory.+?(?=Url).+<\w+.*>(.*?)</\w+>.+?(?=VirtualDirectory)"
)


def script_in_vdir_change(text: str) -> tuple[str, str, str] | None:
    """``(cmdlet, parameter, markup)`` when a vdir cmdlet sets a URL to markup.

    >>> script_in_vdir_change('Cmdlet Set-OabVirtualDirectory, parameters -ExternalUrl '
    ...     '"http://f/#<script language="JScript" runat="server">eval(1)</script>"')[:2]
    ('Set-OabVirtualDirectory', 'ExternalUrl')
    >>> script_in_vdir_change('Set-OwaVirtualDirectory -ExternalUrl "https://mail.x/owa"') is None
    True
    """
    cmdlet = VDIR_CMDLET.search(text)
    if cmdlet is None:
        return None
    markup = URL_WITH_MARKUP.search(text, cmdlet.end())
    if markup is None:
        return None
    return cmdlet.group(1), markup.group(1), markup.group(2)[:300]


class EcpVirtualDirectoryCheck:
    """ECP server log lines where a virtual directory URL was set to markup."""

    name: ClassVar[str] = "exchange-ecp-vdir-script"
    kinds: ClassVar[tuple[str, ...]] = ("ecp",)
    summary: ClassVar[str] = "CVE-2021-27065: Set-*VirtualDirectory with script in a URL (ECP log)"
    source: ClassVar[str] = "Microsoft Test-ProxyLogon.ps1 (Get-Cve27065)"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        # Headerless lines keep their CSV quoting; undo the doubled quotes to read them.
        text = " ".join(record.fields.values()) if record.fields else record.raw.replace('""', '"')
        hit = script_in_vdir_change(text)
        if hit is None and TEST_PROXYLOGON_ECP.search(text) is None:
            return
        cmdlet, param, markup = hit or ("Set-*VirtualDirectory", "Url", "")
        self.findings.append(
            make_finding(
                self.name,
                record,
                0.95,
                f"ECP ran {cmdlet} with markup in -{param} ({markup[:80]!r}): the "
                "CVE-2021-27065 step that plants a web shell in a virtual directory's settings.",
                src=record.get("ClientIpAddress") or record.get("ClientIPAddress"),
                subject=record.get("ServerName"),
                cmdlet=cmdlet,
                parameter=param,
                markup=markup,
            )
        )

    def finish(self) -> list[Finding]:
        return self.findings
