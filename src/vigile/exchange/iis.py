"""ProxyLogon requests and web-shell use in IIS W3C logs.

Patterns, each matched on ``cs-uri-stem`` and on the decoded ``cs-uri-query``:

* POST to ``/owa/auth/Current/themes/resources/*`` (Volexity; CISA AA21-062A);
* ``/ecp/<1-30 chars>.(js|flt|css)`` and ``/owa/auth/<name>.js``, the static-looking
  URLs the request forgery posts to (``/ecp/y.js``, Sigma HAFNIUM web rule);
* ``/ecp/DDI/DDIService.svc/SetObject`` with ``schema=Reset…`` (Microsoft HAFNIUM
  blog; Sigma);
* the user agents listed by CISA AA21-062A and the Sigma HAFNIUM rule, on POSTs;
* web-shell parameters (``=whoami``, ``cmd /c``, ``Response.Write``…) and POSTs to
  pages under ``/aspnet_client/``;
* ProxyShell's ``/autodiscover/autodiscover.json?@…`` routed to PowerShell, MAPI or
  EWS (Sigma ProxyShell web rule), the next wave against the same servers.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import unquote_plus

from vigile.detect import Finding
from vigile.exchange import LogRecord
from vigile.exchange.grouping import Grouper

SSRF_STATIC = re.compile(
    r"(?:^|/)ecp/[^/?&=]{1,30}\.(?:js|flt|css)\b|/owa/auth/[^/?&=]+\.js\b", re.IGNORECASE
)
THEMES_POST = re.compile(r"/owa/auth/Current/themes/resources/", re.IGNORECASE)
RESET_SETOBJECT = re.compile(r"/ecp/DDI/DDIService\.svc/SetObject", re.IGNORECASE)
#: ProxyShell (CVE-2021-34473): autodiscover.json?@ routed to a back end (Sigma web rule).
PROXYSHELL = re.compile(
    r"autodiscover\.json\?@.*(powershell|mapi/nspi|/ews|x-rps-cat|/owa/|autodiscover\.json)",
    re.IGNORECASE,
)
SHELL_PARAMS = re.compile(
    r"=\s*whoami|cmd(?:\.exe)?\s+/c|powershell|Response\.Write|WScript\.Shell|eval\(",
    re.IGNORECASE,
)
#: CISA AA21-062A / Volexity / Sigma HAFNIUM user agents (IIS writes spaces as '+').
HAFNIUM_AGENTS = tuple(
    a.lower()
    for a in (
        "DuckDuckBot/1.0;+(+http://duckduckgo.com/duckduckbot.html)",
        "facebookexternalhit/1.1+(+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0+(compatible;+Baiduspider/2.0;++http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0+(compatible;+Bingbot/2.0;++http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0+(compatible;+Googlebot/2.1;++http://www.google.com/bot.html",
        "Mozilla/5.0+(compatible;+Konqueror/3.5;+Linux)+KHTML/3.5.5+(like+Gecko)+"
        "(Exabot-Thumbnails)",
        "Mozilla/5.0+(compatible;+Yahoo!+Slurp;+http://help.yahoo.com/help/us/ysearch/slurp)",
        "Mozilla/5.0+(compatible;+YandexBot/3.0;++http://yandex.com/bots)",
        "Mozilla/5.0+(X11;+Linux+x86_64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+"
        "Chrome/51.0.2704.103+Safari/537.36",
        "antSword/v2.1",
        "Googlebot/2.1+(+http://www.googlebot.com/bot.html)",
        "ExchangeServicesClient/0.0.0.0",
        "python-requests/2.19.1",
        "python-requests/2.25.1",
    )
)
DESCRIBE = {
    "themes-post": "POSTs to /owa/auth/Current/themes/resources/, where ProxyLogon shells hide",
    "ssrf-static": "requests for a root-level /ecp/*.js|flt|css or /owa/auth/*.js, the URLs "
    "the CVE-2021-26855 request forgery posts to",
    "reset-setobject": "DDIService.svc/SetObject with schema=Reset…, the CVE-2021-27065 reset",
    "hafnium-agent-post": "POSTs with a user agent listed by CISA AA21-062A for HAFNIUM",
    "hafnium-agent": "GETs with a user agent listed by CISA AA21-062A (crawlers use some too)",
    "shell-params": "requests whose query holds web-shell commands (whoami, cmd /c, …)",
    "aspnet-client-post": "POSTs to a page under /aspnet_client/, where no product page lives",
    "proxyshell": "autodiscover.json?@… requests routed to a back end (ProxyShell, "
    "CVE-2021-34473, the successor of ProxyLogon)",
}


def match_request(method: str, stem: str, query: str, agent: str) -> list[tuple[str, float]]:
    """``(pattern, score)`` for every pattern one request matches.

    >>> match_request("POST", "/ecp/y.js", "", "python-requests/2.25.1")
    [('ssrf-static', 0.8), ('hafnium-agent-post', 0.75)]
    >>> match_request("POST", "/owa/auth.owa", "", "Mozilla/5.0+(Windows+NT+10.0)")
    []
    """
    post = method.upper() == "POST"
    if query and ("%" in query or "+" in query):
        query = unquote_plus(query)
    url = f"{stem}?{query}" if query else stem
    hits = []
    if post and THEMES_POST.search(url):
        hits.append(("themes-post", 0.8))
    if SSRF_STATIC.search(url):
        hits.append(("ssrf-static", 0.8 if post else 0.55))
    if RESET_SETOBJECT.search(url) and re.search(r"schema=Reset", url, re.IGNORECASE):
        hits.append(("reset-setobject", 0.85))
    if agent.lower().replace(" ", "+").startswith(HAFNIUM_AGENTS):
        hits.append(("hafnium-agent-post", 0.75) if post else ("hafnium-agent", 0.35))
    if query and SHELL_PARAMS.search(query):
        hits.append(("shell-params", 0.85))
    if post and re.search(r"/aspnet_client/.*\.as[hmp]x$", stem, re.IGNORECASE):
        hits.append(("aspnet-client-post", 0.85))
    if PROXYSHELL.search(url):
        hits.append(("proxyshell", 0.85))
    return hits


class IisProxyLogonCheck:
    """IIS requests matching published ProxyLogon and web-shell patterns."""

    name: ClassVar[str] = "exchange-iis-requests"
    kinds: ClassVar[tuple[str, ...]] = ("iis",)
    summary: ClassVar[str] = "ProxyLogon URLs, HAFNIUM user agents and web-shell use in IIS logs"
    source: ClassVar[str] = "CISA AA21-062A; Volexity; Sigma HAFNIUM web rules; Microsoft blog"

    def __init__(self) -> None:
        self.groups = Grouper(self.name)

    def feed(self, record: LogRecord) -> None:
        method, stem = record.get("cs-method"), record.get("cs-uri-stem")
        query, agent = record.get("cs-uri-query"), record.get("cs(User-Agent)")
        for pattern, score in match_request(method, stem, query, agent):
            self.groups.add(
                record.get("c-ip"),
                pattern,
                score,
                record,
                server=record.get("s-ip") or None,
                request=f"{method} {stem}{'?' + query if query else ''}"[:500],
                status=record.get("sc-status"),
                user_agent=agent,
            )

    def finish(self) -> list[Finding]:
        return self.groups.findings(DESCRIBE)
