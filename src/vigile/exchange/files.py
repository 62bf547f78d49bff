"""Web shells, credential dumps and staging archives in the copied file tree.

* ``.aspx/.ashx/.asmx`` under ``aspnet_client/**`` (no product page lives there) and
  under ``FrontEnd/HttpProxy/{owa,ecp}/auth/**`` that are not product pages
  (Microsoft HAFNIUM blog; CISA AA21-062A; Volexity);
* content matching the project's YARA rules (``vigile/data/exchange_webshells.yar``,
  compiled with yara-python): China Chopper one-liners, OAB settings with script;
* ``lsass*.dmp`` in the Windows temp folder or ``C:\\root`` and ``.7z/.zip/.rar`` under
  ProgramData (Test-ProxyLogon.ps1, Get-SuspiciousFile).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files as package_files
from pathlib import PurePosixPath
from typing import Any, ClassVar

from vigile.detect import Finding
from vigile.exchange import LogRecord, make_finding

#: Product pages found in owa/auth and ecp/auth of Exchange 2013-2019.
PRODUCT_AUTH_PAGES = {
    "owa": {
        "errorfe.aspx", "expiredpassword.aspx", "frowny.aspx", "logoff.aspx", "logon.aspx",
        "outlookcn.aspx", "redirsuiteserviceproxy.aspx", "signout.aspx", "svmfeedback.aspx",
        "getidtoken.htm", "owaauth.dll",
    },
    "ecp": {"timeoutlogoff.aspx"},
}  # fmt: skip
WEB_PAGE = re.compile(r"\.as[hmp]x$", re.IGNORECASE)
AUTH_DIR = re.compile(r"frontend/httpproxy/(owa|ecp)/auth/", re.IGNORECASE)


@cache
def compiled_rules() -> Any:
    """The project's web-shell YARA rules, compiled once."""
    import yara

    source = package_files("vigile").joinpath("data/exchange_webshells.yar").read_text()
    return yara.compile(source=source)


def path_verdict(path: str) -> tuple[float, str] | None:
    """``(score, why)`` for a path alone, or ``None``.

    >>> path_verdict("inetpub/wwwroot/aspnet_client/system_web/4_0_30319/x.aspx")[0]
    0.8
    >>> path_verdict("V15/FrontEnd/HttpProxy/ecp/auth/TimeoutLogoff.aspx") is None
    True
    >>> path_verdict("Windows/Temp/lsass.dmp")[0]
    0.85
    """
    low = path.lower().replace("\\", "/")
    name = PurePosixPath(low).name
    auth = AUTH_DIR.search(low)
    if WEB_PAGE.search(name) and "/aspnet_client/" in f"/{low}":
        return 0.8, "a web page under aspnet_client, where Exchange installs none"
    if auth and WEB_PAGE.search(name) and name not in PRODUCT_AUTH_PAGES[auth.group(1)]:
        return 0.8, f"a web page in {auth.group(1)}/auth that is not a product page"
    if re.fullmatch(r"lsass.*\.dmp", name) and re.search(r"(^|/)(windows/temp|root)/", low):
        return 0.85, "an lsass memory dump (credential theft) where HAFNIUM left them"
    if re.search(r"\.(7z|zip|rar)$", name) and "programdata/" in low:
        return 0.5, "an archive under ProgramData, where HAFNIUM staged stolen data"
    return None


class WebShellFileCheck:
    """Files that should not be there, or whose content matches web-shell rules."""

    name: ClassVar[str] = "exchange-webshell-file"
    kinds: ClassVar[tuple[str, ...]] = ("file",)
    summary: ClassVar[str] = "Web shells, lsass dumps and staging archives on disk"
    source: ClassVar[str] = "Test-ProxyLogon.ps1; CISA AA21-062A; Volexity; project YARA rules"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        path = record.get("path")
        verdict = path_verdict(path)
        rules = self._yara(record.content) if record.content else []
        if verdict is None and not rules:
            return
        score, why = verdict or (0.0, "")
        if rules:
            score = max(score, 0.95)
            why = f"{why}; " if why else ""
            why += f"its content matches {', '.join(rules)}"
        self.findings.append(
            make_finding(
                self.name,
                record,
                score,
                f"{path} ({record.get('size')} bytes) is {why}. Time is the file's "
                "modification time in the copy.",
                subject=path,
                path=path,
                size=int(record.get("size") or 0),
                yara=rules,
            )
        )

    @staticmethod
    def _yara(content: bytes) -> list[str]:
        return sorted(m.rule for m in compiled_rules().match(data=content))

    def finish(self) -> list[Finding]:
        return self.findings
